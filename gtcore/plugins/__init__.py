"""Plugins: their records (spec), parsing plugin.md (parse), the parse cache, discovery across the town, and the
kennel's kept scan with the inotify watch that proves it current."""
