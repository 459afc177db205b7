"""Developer tools that run from a checkout and are not part of the installed package (not in the wheel).

Modules: ``sftp_standin`` (the demo's local SFTP server).
"""
