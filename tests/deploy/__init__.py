"""Checks of the production deployment: systemd units, nginx, and the Ansible playbook."""
