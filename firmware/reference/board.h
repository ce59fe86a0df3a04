/* QEMU mps2-an385 peripherals used by the reference firmware: CMSDK UART0, TIMER0, TIMER1. */
#ifndef REF_BOARD_H
#define REF_BOARD_H

#include <stddef.h>
#include <stdint.h>

void board_init(void);
void board_timer0_start(uint32_t hz);
void uart_putc(char c);
void uart_puts(const char *s);
/* Next received byte, or -1; filled by the RX interrupt. */
int uart_getc(void);
/* Called from the RX interrupt with each byte (the console wakes up on it). */
void ref_console_rx(void);
/* Called from the TIMER0 interrupt. */
void ref_timer_tick(void);

#endif /* REF_BOARD_H */
