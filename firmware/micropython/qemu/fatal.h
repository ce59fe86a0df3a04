// The port's fatal stop (fatal.c), for the start-up code and main.c.
#ifndef MPFR_QEMU_FATAL_H
#define MPFR_QEMU_FATAL_H

// Where a faulted core stays, interrupts masked; a named place the host recognises.
__attribute__((noinline, noreturn)) void port_halted(void);
// Prints `FATAL <what>` (` core=N` on two cores) in one write and parks the core.
__attribute__((noreturn)) void port_fatal(const char *what);

#endif
