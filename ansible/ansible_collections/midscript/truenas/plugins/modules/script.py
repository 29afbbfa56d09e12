#!/usr/bin/python
# -*- coding: utf-8 -*-
# Thin glue over `midscript machine` (action "script"); the logic lives in midscript.
from __future__ import annotations

DOCUMENTATION = r"""
module: script
short_description: Run a midscript Rhai script against TrueNAS
version_added: "0.1.0"
description:
  - Runs a C(.rhai) script with midscript, on one connection to the NAS, with variables.
  - The script sees O(vars) as the map C(vars), O(args) as C(args), and C(check_mode).
  - The script reports that it changed something by calling C(changed()) (C(changed(false))
    takes it back); that is the task's C(changed). The value of its last expression is
    returned as C(result).
  - An uncaught error, or C(exit(n)) with n other than 0, fails the task with the script's
    error report (C(file:line:col)) in C(msg).
  - In check mode the script runs only with O(supports_check_mode=true) (it must then change
    nothing when C(check_mode) is true); otherwise it is skipped.
  - Runs the C(midscript) binary on the controller (C(midscript machine)).
author:
  - midscript contributors
extends_documentation_fragment:
  - midscript.truenas.connection
options:
  path:
    description:
      - The script on the controller. A relative path is looked up like other file-taking
        modules do (a role's C(files/), then the playbook's folder).
    type: path
    required: true
  vars:
    description:
      - Variables, the map C(vars) in the script.
    type: dict
    default: {}
  args:
    description:
      - Arguments, the array C(args) in the script.
    type: list
    elements: str
    default: []
  supports_check_mode:
    description:
      - The script reads C(check_mode) and changes nothing when it is true, so it may run in
        check mode.
    type: bool
    default: false
attributes:
  check_mode:
    support: partial
    details: Only scripts marked with O(supports_check_mode) run in check mode.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Make sure the NTP servers are set
  midscript.truenas.script:
    path: scripts/ntp.rhai
    vars:
      servers: [0.pool.ntp.org, 1.pool.ntp.org]
    supports_check_mode: true
  delegate_to: localhost

# scripts/ntp.rhai:
#   let have = call("system.ntpserver.query").map(|s| s.address);
#   for s in vars.servers {
#     if !have.contains(s) {
#       if !check_mode { call("system.ntpserver.create", #{ address: s }); }
#       changed();
#     }
#   }
#   have
"""

RETURN = r"""
result:
  description: The value of the script's last expression.
  returned: success
  type: raw
stdout_lines:
  description: What the script printed.
  returned: when run
  type: list
  elements: str
stderr_lines:
  description: The script's diagnostics (C(log::*), warnings, the error report).
  returned: when run
  type: list
  elements: str
exit_status:
  description: The status C(midscript run) would exit with.
  returned: when run
  type: int
skipped:
  description: True when check mode skipped the script.
  returned: in check mode without O(supports_check_mode)
  type: bool
"""

from ansible_collections.midscript.truenas.plugins.module_utils.machine import main_for


def main():
    main_for(
        "script",
        dict(
            path=dict(type="path", required=True),
            vars=dict(type="dict", default={}),
            args=dict(type="list", elements="str", default=[]),
            supports_check_mode=dict(type="bool", default=False),
        ),
    )


if __name__ == "__main__":
    main()
