# -*- coding: utf-8 -*-
# The action plugin shared by the midscript.truenas modules: it fills the connection options a
# task leaves out from the inventory host's `midscript_*` variables (each NAS is a host; the
# module itself runs on the controller), resolves relative local paths like other file-taking
# modules do (role `files/`, then the playbook's folder), and runs the module.
from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

# option -> host variable
HOST_VARS = dict(
    url="midscript_url",
    host="midscript_host",
    api_key="midscript_api_key",
    api_key_file="midscript_api_key_file",
    username="midscript_username",
    password="midscript_password",
    fingerprint="midscript_fingerprint",
    insecure="midscript_insecure",
    profile="midscript_profile",
    timeout="midscript_timeout",
    midscript_bin="midscript_bin",
)

# module -> options naming a local file or folder
LOCAL_PATHS = dict(
    compose=("project_src",),
    script=("path",),
)


class HostVarsAction(ActionBase):
    _supports_check_mode = True

    def _local(self, path):
        if os.path.isabs(path):
            return path
        try:
            return self._find_needle("files", path)
        except AnsibleError:
            return self._loader.path_dwim(path)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        for option, var in HOST_VARS.items():
            if args.get(option) is None and task_vars.get(var) is not None:
                args[option] = self._templar.template(task_vars[var])
        short = self._task.action.split(".")[-1]
        for option in LOCAL_PATHS.get(short, ()):
            if args.get(option):
                args[option] = self._local(args[option])
        return merge_hash(
            result, self._execute_module(module_args=args, task_vars=task_vars)
        )
