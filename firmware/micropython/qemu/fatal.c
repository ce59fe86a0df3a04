// The port's fatal stop for both boards: one FATAL line on UART0, then the core parks where
// `mpfr crash capture` finds it.
#include <stdint.h>
#include <string.h>

#include "FreeRTOS.h"

#include "fatal.h"
#include "uart.h"

// Where a core that met a fault stays, its interrupts masked, until a debugger (`mpfr crash
// capture`) reads it: one named place, so the host knows the core is parked and not running.
// Ending QEMU here would leave nothing to capture.
void port_halted(void) {
    for (;;) {
        __asm volatile ("" ::: "memory");
    }
}

// Prints one FATAL line on UART0 and parks this core in port_halted().
// The line goes out in one write, so it lands between the other core's strings, not inside one
// (uart.c).
void port_fatal(const char *what) {
    __asm volatile ("cpsid i" ::: "memory");
    char line[80] = "\r\nFATAL ";
    size_t n = 8;
    size_t len = strlen(what);
    if (len > sizeof(line) - n - 9) {
        len = sizeof(line) - n - 9;
    }
    memcpy(line + n, what, len);
    n += len;
#if configNUMBER_OF_CORES > 1
    memcpy(line + n, " core=0", 7);
    line[n + 6] = (char)('0' + portGET_CORE_ID());
    n += 7;
#endif
    memcpy(line + n, "\r\n", 2);
    n += 2;
    uart_tx_strn(line, n);
    port_halted();
}
