// CMSDK UART0 of QEMU mps2-an385: polled transmit, interrupt-driven receive into a ring buffer.
#ifndef MICROPY_INCLUDED_QEMU_MPFR_UART_H
#define MICROPY_INCLUDED_QEMU_MPFR_UART_H

#include <stddef.h>

void uart_init(void);
// The next received byte, or -1.
int uart_rx_chr(void);
// Whether a received byte is waiting.
int uart_rx_any(void);
void uart_tx_strn(const char *buf, size_t len);
// UART0 receive interrupt (vector table).
void uart0_rx_irq_handler(void);

#endif // MICROPY_INCLUDED_QEMU_MPFR_UART_H
