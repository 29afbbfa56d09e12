#!/usr/bin/python
# -*- coding: utf-8 -*-
# Thin glue over `midscript machine` (action "call"); the logic lives in midscript.
from __future__ import annotations

DOCUMENTATION = r"""
module: call
short_description: Call a TrueNAS middleware method, or run a job
version_added: "0.1.0"
description:
  - Calls any method of the TrueNAS middleware API (as C(midclt call) does) and returns its
    result, or with O(job=true) starts a job method and waits for its result.
  - C(changed) is O(changed) when given; otherwise false for methods that only read (names
    ending in C(.query), C(.get_instance), C(.config), C(.info), C(.choices), C(.status), and
    C(core.*) but C(core.job_*)) and true for all others. Use C(changed_when) on C(result) for
    finer control.
  - In check mode a method that reads is called; any other is not, and C(changed) says it would
    have been.
  - Runs the C(midscript) binary on the controller (C(midscript machine)).
author:
  - midscript contributors
extends_documentation_fragment:
  - midscript.truenas.connection
options:
  method:
    description:
      - The method, for example C(pool.dataset.create).
    type: str
    required: true
  args:
    description:
      - The method's positional arguments.
    type: list
    elements: raw
    default: []
  job:
    description:
      - The method starts a job; wait for it and return the job's result.
    type: bool
    default: false
  changed:
    description:
      - Whether the call changes something (see the description for the default).
    type: bool
attributes:
  check_mode:
    support: partial
    details: Methods that only read are called; others are not.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Read the version of every NAS
  midscript.truenas.call:
    method: system.info
  register: info
  delegate_to: localhost

- name: Create a dataset unless it exists
  midscript.truenas.call:
    method: pool.dataset.create
    args:
      - name: tank/backups
  register: created
  failed_when: created.failed and created.errname != 'EEXIST'
  changed_when: not created.failed
  delegate_to: localhost

- name: Upgrade an app and wait for the job
  midscript.truenas.call:
    method: app.upgrade
    args: [nextcloud]
    job: true
  delegate_to: localhost
"""

RETURN = r"""
method:
  description: The method.
  returned: always
  type: str
called:
  description: Whether the method was called (false in check mode for a method that changes).
  returned: success
  type: bool
result:
  description: The method's result, or the job's result with O(job=true).
  returned: when called
  type: raw
job_id:
  description: The job's id.
  returned: with O(job=true)
  type: int
errname:
  description: The server's error name (C(EEXIST), C(ENOENT), ...) when the call failed.
  returned: failure
  type: str
errno:
  description: The server's error number when the call failed.
  returned: failure
  type: int
"""

from ansible_collections.midscript.truenas.plugins.module_utils.machine import main_for


def main():
    main_for(
        "call",
        dict(
            method=dict(type="str", required=True),
            args=dict(type="list", elements="raw", default=[]),
            job=dict(type="bool", default=False),
            changed=dict(type="bool"),
        ),
    )


if __name__ == "__main__":
    main()
