"""The command groups of the ``nasprof`` CLI, one module each; ``nasprof.cli`` registers them."""
