"""CLI command modules. Each module here attaches its commands to ``hub.cli.main`` on import;
``hub.cli`` imports every module of this package, so a feature adds a file, not an edit."""
