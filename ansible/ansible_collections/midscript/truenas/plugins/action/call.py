# -*- coding: utf-8 -*-
# midscript.truenas.call: connection options from the host's midscript_* variables.
from __future__ import annotations

from ansible_collections.midscript.truenas.plugins.plugin_utils.host_vars import HostVarsAction


class ActionModule(HostVarsAction):
    pass
