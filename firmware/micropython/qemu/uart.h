// CMSDK UART0 of QEMU mps2-an385: polled transmit, interrupt-driven receive into a ring buffer.
#ifndef MICROPY_INCLUDED_QEMU_MPFR_UART_H
#define MICROPY_INCLUDED_QEMU_MPFR_UART_H

#include <stddef.h>
#include <stdint.h>

void uart_init(void);
// The next received byte, or -1.
int uart_rx_chr(void);
// Whether a received byte is waiting.
int uart_rx_any(void);
// Writes len bytes whole: no other writer's bytes land among them (uart.c).
void uart_tx_strn(const char *buf, size_t len);
// Holds the transmit lock across several uart_tx_strn() calls; returns the tag for
// uart_tx_unlock() (0 when the caller holds it already).
uintptr_t uart_tx_lock(void);
void uart_tx_unlock(uintptr_t tag);
// UART0 receive interrupt (vector table).
void uart0_rx_irq_handler(void);

#endif // MICROPY_INCLUDED_QEMU_MPFR_UART_H
