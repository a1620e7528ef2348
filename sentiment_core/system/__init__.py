"""What runs where on this machine: which process owns a trial or run and whether it is alive
(``processes``), file and database locks (``locks``), torch threads that follow the machine's load
(``cpu_share``), the CPU allocator's huge pages (``cpu_allocator``), and spawned worker processes
with their threads and GPU (``workers``), a report folder several commands may write at once
(``folders``). Nothing here imports torch at import time."""
