# -*- coding: utf-8 -*-
# Shared by the midscript.truenas modules: the connection options, and one round trip through
# `midscript machine` (one JSON request on stdin, one JSON result on stdout). All logic lives
# in midscript; this file only builds the request and hands back the result.
from __future__ import annotations

import json
import os

from ansible.module_utils.basic import AnsibleModule

CONNECTION_SPEC = dict(
    url=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    api_key_file=dict(type="path"),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    fingerprint=dict(type="str"),
    insecure=dict(type="bool"),
    profile=dict(type="str"),
    timeout=dict(type="float"),
    midscript_bin=dict(type="str", default="midscript"),
)

CONNECTION_KEYS = (
    "url",
    "host",
    "api_key",
    "api_key_file",
    "username",
    "password",
    "fingerprint",
    "insecure",
    "profile",
    "timeout",
)


def argument_spec(own):
    """The module's own options plus the connection options."""
    spec = dict(CONNECTION_SPEC)
    spec.update(own)
    return spec


def main_for(action, own, **module_args):
    """A module's whole `main`: its options (`own`) plus the connection options, check mode
    supported, and its own options sent as the `action` request's params."""
    module = AnsibleModule(
        argument_spec=argument_spec(own), supports_check_mode=True, **module_args
    )
    run(module, action, dict((k, module.params[k]) for k in own))


def _binary(module):
    name = module.params["midscript_bin"]
    if os.sep in name:
        if not os.access(name, os.X_OK):
            module.fail_json(msg="midscript_bin %s is not an executable file" % name)
        return name
    return module.get_bin_path(name, required=True)


def run(module, action, params):
    """Send one request for `action` with `params`; exit the module with the result."""
    connection = dict(
        (k, module.params[k]) for k in CONNECTION_KEYS if module.params.get(k) is not None
    )
    request = dict(
        action=action,
        connection=connection,
        check_mode=module.check_mode,
        diff=module._diff,
        params=dict((k, v) for k, v in params.items() if v is not None),
    )
    rc, out, err = module.run_command(
        [_binary(module), "machine"], data=json.dumps(request), binary_data=True
    )
    try:
        result = json.loads(out)
    except ValueError:
        module.fail_json(
            msg="midscript machine gave no JSON result (exit status %s): %s"
            % (rc, (err or out).strip()),
            rc=rc,
        )
    if not isinstance(result, dict):
        module.fail_json(msg="midscript machine gave %r instead of a JSON object" % (result,), rc=rc)
    if err.strip():
        result["stderr"] = err
    if not module._diff:
        result.pop("diff", None)
    # Ansible reserves `warnings`: show them as the task's warnings.
    for warning in result.pop("warnings", None) or []:
        module.warn(str(warning))
    if result.pop("failed", False) or rc != 0:
        result.setdefault("msg", "midscript machine failed (exit status %s)" % rc)
        module.fail_json(**result)
    module.exit_json(**result)
