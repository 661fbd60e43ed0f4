"""machinescan: discover what is on a Linux machine and move it elsewhere."""

__version__ = "0.1.0"
