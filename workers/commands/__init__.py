"""CLI sub-commands, one module per verb group; registered in workers.cli."""
