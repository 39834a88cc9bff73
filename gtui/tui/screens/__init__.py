"""Screens and modals of the control room."""
