"""What runs where on this machine: which process owns a trial or run and whether it is alive
(``processes``), file and database locks (``locks``), torch threads that follow the machine's load
(``cpu_share``), the CPU allocator's huge pages (``cpu_allocator``), and spawned worker processes
with their threads and GPU (``workers``). Nothing here imports torch at import time."""
