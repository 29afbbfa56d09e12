#!/usr/bin/python
# -*- coding: utf-8 -*-
# Thin glue over `midscript machine` (action "compose"); the logic lives in midscript.
from __future__ import annotations

DOCUMENTATION = r"""
module: compose
short_description: Deploy a docker-compose project to TrueNAS as a custom app
version_added: "0.1.0"
description:
  - Resolves a local compose project (files, overrides, C(.env), variables) on the controller
    and deploys it to the NAS as a TrueNAS custom app, or removes the app.
  - Idempotent. Nothing is sent when the NAS already runs exactly this document, and
    C(changed) is then false.
  - After a create or update it waits until the app is RUNNING or CRASHED. A crash fails the
    task on that host alone, with the crashed containers' last log lines in C(msg).
  - Check mode sends only reads and reports what would change. Diff mode shows the semantic
    compose diff, with values from C(.env), C(env_file) and O(vars), and secret-looking keys,
    masked.
  - Runs the C(midscript) binary on the controller (C(midscript machine)).
author:
  - midscript contributors
extends_documentation_fragment:
  - midscript.truenas.connection
options:
  name:
    description:
      - The app name (lowercase letters, digits and C(-), at most 40 characters).
      - Defaults to the name of the O(project_src) folder.
    type: str
  project_src:
    description:
      - The project folder on the controller. A relative path is looked up like other
        file-taking modules do (a role's C(files/), then the playbook's folder).
      - Required with O(state=present).
    type: path
  files:
    description:
      - Compose files, relative to O(project_src), merged in order.
      - Defaults to the first of C(compose.yaml), C(compose.yml), C(docker-compose.yml),
        C(docker-compose.yaml).
    type: list
    elements: str
  env_file:
    description:
      - A file of variables to use instead of the project's C(.env) (relative to O(project_src)).
    type: str
  vars:
    description:
      - Variables for C(${VAR}) interpolation; they win over C(.env) and the environment.
      - "Their values are masked in diffs and results, but Ansible shows a task's arguments
        with C(-vvv): put C(no_log: true) on a task whose O(vars) hold secrets, or keep
        them in the project's C(.env)."
    type: dict
  dataset_root:
    description:
      - Where relative bind mounts go on the NAS; C(./data) becomes C(DATASET_ROOT/APP/data).
    type: str
  state:
    description:
      - V(present) deploys or updates the app and waits for it; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  create_dirs:
    description:
      - Create missing bind-mount directories on the NAS first.
    type: bool
    default: false
  wait:
    description:
      - Wait until the app is RUNNING or CRASHED after a change.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for RUNNING or CRASHED.
    type: float
    default: 300
  log_lines:
    description:
      - Log lines per crashed container in C(msg).
    type: int
    default: 50
  remove_images:
    description:
      - With O(state=absent), remove the app's images too.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Deploy the monitoring stack to every NAS
  hosts: nas
  connection: local
  gather_facts: false
  tasks:
    - name: Grafana and Prometheus as a custom app
      midscript.truenas.compose:
        name: monitoring
        project_src: stacks/monitoring
        dataset_root: /mnt/tank/apps
        create_dirs: true
        vars:
          GRAFANA_ADMIN_PASSWORD: "{{ vault_grafana_password }}"
      register: deployed
      no_log: true  # vars holds a secret: keep the task's arguments out of -vvv

    - name: Show where it answers
      ansible.builtin.debug:
        var: deployed.portals

- name: Remove an app
  midscript.truenas.compose:
    name: old-wiki
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
app:
  description: The app name.
  returned: always
  type: str
  sample: monitoring
action:
  description:
    - What was done (or, in check mode, would be done) - V(created), V(updated), V(started),
      V(unchanged), V(deleted), V(absent) (nothing to delete) or V(failed).
  returned: always
  type: str
  sample: created
state:
  description: The app's state afterwards (RUNNING, CRASHED, DEPLOYING, STOPPED), null when it does not exist.
  returned: always
  type: str
  sample: RUNNING
portals:
  description: The app's portals (name to URL), as TrueNAS shows them.
  returned: always
  type: dict
  sample: {"Web UI": "http://0.0.0.0:8081/"}
changes:
  description: The semantic diff per service (secrets masked).
  returned: with O(state=present)
  type: dict
warnings:
  description: What will run differently than a local C(docker compose up).
  returned: with O(state=present)
  type: list
  elements: str
jobs:
  description: The ids of the jobs run on the NAS.
  returned: when something was deployed
  type: list
  elements: int
crashed:
  description: The crashed containers, each with C(service), C(container_id), C(state) and C(lines).
  returned: when something was deployed
  type: list
  elements: dict
dirs_created:
  description: Folders created on the NAS (O(create_dirs)), each with C(path) and C(dataset) (the dataset it is, or null for a plain directory).
  returned: when something was deployed
  type: list
  elements: dict
missing_dirs:
  description: Bind-mount folders that do not exist on the NAS (without O(create_dirs) docker creates them root-owned).
  returned: when something was deployed
  type: list
  elements: str
uploaded:
  description: Files uploaded to the NAS (secrets, configs and single-file mounts whose copy there was missing or out of date).
  returned: when something was deployed
  type: list
  elements: str
"""

from ansible_collections.midscript.truenas.plugins.module_utils.machine import main_for


def main():
    main_for(
        "compose",
        dict(
            name=dict(type="str"),
            project_src=dict(type="path"),
            files=dict(type="list", elements="str"),
            env_file=dict(type="str"),
            vars=dict(type="dict"),
            dataset_root=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            create_dirs=dict(type="bool", default=False),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="float", default=300),
            log_lines=dict(type="int", default=50),
            remove_images=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ("project_src",))],
        required_one_of=[("name", "project_src")],
    )


if __name__ == "__main__":
    main()
