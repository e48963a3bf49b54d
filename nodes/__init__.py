"""ComfyUI glue: node classes that adapt sockets to the solvers in ../solvers."""
