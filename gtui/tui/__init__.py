"""The control room (Textual): the app, its messages and pane actions, the snapshot its collector builds off the UI
thread (state), keys, styles, the garbage collector's tuning, components and screens."""
