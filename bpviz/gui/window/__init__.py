"""The window shell: the main window, its actions, menus, docks, start page, dialogs and settings."""
