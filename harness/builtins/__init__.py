"""The harness's own plugins (listed in ``harness.plugins.DEFAULT_PLUGINS``)."""
