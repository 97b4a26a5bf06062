"""Training recipes (fer train --config NAME finds them by name); installed as the fercli.configs package."""
