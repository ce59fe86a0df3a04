// Reset handler, vector table and fault reports for the Cortex-M3 of QEMU mps2-an385.
#include <stdint.h>
#include <string.h>

#include "uart.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

int main(void);
void SVC_Handler(void);
void PendSV_Handler(void);
void SysTick_Handler(void);

// Where a core that met a fault stays, its interrupts masked, until a debugger (`mpfr crash
// capture`) reads it: one named place, so the host knows the core is parked and not running.
// Ending QEMU here would leave nothing to capture.
__attribute__((noinline, noreturn)) void port_halted(void) {
    for (;;) {
        __asm volatile ("" ::: "memory");
    }
}

// Prints one FATAL line on UART0 and parks this core in port_halted().
// One write, as on mps2-an521 (startup_an521.c), where it keeps the line whole.
__attribute__((noreturn)) void port_fatal(const char *what) {
    __asm volatile ("cpsid i" ::: "memory");
    char line[80] = "\r\nFATAL ";
    size_t n = 8;
    size_t len = strlen(what);
    if (len > sizeof(line) - n - 2) {
        len = sizeof(line) - n - 2;
    }
    memcpy(line + n, what, len);
    n += len;
    memcpy(line + n, "\r\n", 2);
    n += 2;
    uart_tx_strn(line, n);
    port_halted();
}

void Reset_Handler(void) {
    memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
    memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
    main();
    for (;;) {
    }
}

static void NMI_Handler(void) {
    port_fatal("NMI");
}

static void HardFault_Handler(void) {
    port_fatal("HardFault");
}

static void Other_Fault_Handler(void) {
    port_fatal("fault");
}

static void Default_Handler(void) {
    port_fatal("unexpected interrupt");
}

typedef void (*vector_t)(void);

// 16 system exceptions, then 32 external interrupts (UART0 RX = 0).
__attribute__((section(".vectors"), used)) static const vector_t vectors[16 + 32] = {
    (vector_t)(uintptr_t)&_estack,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    Other_Fault_Handler,
    Other_Fault_Handler,
    Other_Fault_Handler,
    0, 0, 0, 0,
    SVC_Handler,
    Default_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    [16 + 0] = uart0_rx_irq_handler,
    [16 + 1 ... 16 + 31] = Default_Handler,
};
