"""One module per framework. Each imports its framework inside functions only, so that the core and
the CLI import with no framework installed, and exposes ADAPTER with probe(), passes and a runtime."""
