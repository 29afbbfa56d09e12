# -*- coding: utf-8 -*-
# The connection options every midscript.truenas module takes.
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Server URL, for example C(wss://nas.example.com/api/current), or
        C(wss://nas.example.com/websocket) for the legacy protocol of TrueNAS 24.10.
      - Defaults to the host variable C(midscript_url).
    type: str
  host:
    description:
      - Server host name; means C(wss://HOST/api/current), falling back to the legacy
        endpoint on TrueNAS 24.10.
      - Defaults to the host variable C(midscript_host).
    type: str
  api_key:
    description:
      - API key C(<id>-<key>). Never logged, never echoed in results.
      - Defaults to the host variable C(midscript_api_key) (keep it in a vault).
    type: str
  api_key_file:
    description:
      - A file on the controller holding the API key.
      - Defaults to the host variable C(midscript_api_key_file).
    type: path
  username:
    description:
      - The account for a password login, or the API key's owner.
      - Defaults to the host variable C(midscript_username).
    type: str
  password:
    description:
      - The account's password. Never logged, never echoed in results.
      - Defaults to the host variable C(midscript_password).
    type: str
  fingerprint:
    description:
      - SHA-256 fingerprint of the server's certificate, to trust exactly that certificate
        (for self-signed certificates).
      - Defaults to the host variable C(midscript_fingerprint).
    type: str
  insecure:
    description:
      - Do not check the server's certificate at all (throwaway test boxes only).
      - Defaults to the host variable C(midscript_insecure).
    type: bool
  profile:
    description:
      - A profile of midscript's config file on the controller.
      - Defaults to the host variable C(midscript_profile).
    type: str
  timeout:
    description:
      - Seconds to wait for each reply from the server.
      - Defaults to the host variable C(midscript_timeout).
    type: float
  midscript_bin:
    description:
      - The midscript binary on the controller.
      - Defaults to the host variable C(midscript_bin), else C(midscript) on E(PATH).
    type: str
    default: midscript
notes:
  - "The module runs the binary on the controller (use C(connection: local) or
    C(delegate_to: localhost)); each NAS is an inventory host whose C(midscript_*) variables
    say how to reach it."
requirements:
  - midscript (the binary) on the controller
"""
