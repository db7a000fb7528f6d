"""Where code runs: the device, seeding, precision, glibc's allocator and torchrun's processes.

This layer depends on nothing else in neurank, so every layer above can use it."""
