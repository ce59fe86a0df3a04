// CMSDK UART0: see uart.h. Ctrl-C (the interrupt character) is handled in the interrupt, so it
// stops a running program even when nothing reads stdin.
#include <stdint.h>

#include "py/runtime.h"
#include "py/mphal.h"
#include "shared/runtime/interrupt_char.h"
#include "uart.h"

#define UART0_BASE (0x40004000)
#define UART_DATA (*(volatile uint32_t *)(UART0_BASE + 0x00))
#define UART_STATE (*(volatile uint32_t *)(UART0_BASE + 0x04))
#define UART_CTRL (*(volatile uint32_t *)(UART0_BASE + 0x08))
#define UART_INTCLEAR (*(volatile uint32_t *)(UART0_BASE + 0x0c))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x10))

#define UART_STATE_TXFULL (1 << 0)
#define UART_STATE_RXFULL (1 << 1)
#define UART_CTRL_TX_EN (1 << 0)
#define UART_CTRL_RX_EN (1 << 1)
#define UART_CTRL_RX_IRQ_EN (1 << 3)
#define UART_INT_RX (1 << 1)

#define NVIC_ISER0 (*(volatile uint32_t *)0xe000e100)
#define NVIC_IPR ((volatile uint8_t *)0xe000e400)
#define IRQ_UART0_RX (0)

// Large enough for a raw-REPL paste between two reads (run-tests sends 256-byte chunks).
#define RX_BUF_SIZE (1024)

static volatile uint8_t rx_buf[RX_BUF_SIZE];
static volatile uint16_t rx_head, rx_tail;

void uart_init(void) {
    UART_BAUDDIV = 16;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_IRQ_EN;
    // Lowest priority: below configMAX_SYSCALL_INTERRUPT_PRIORITY, so FreeRTOS calls are legal.
    NVIC_IPR[IRQ_UART0_RX] = 0xe0;
    NVIC_ISER0 = 1 << IRQ_UART0_RX;
}

void uart0_rx_irq_handler(void) {
    UART_INTCLEAR = UART_INT_RX;
    int got = 0;
    while (UART_STATE & UART_STATE_RXFULL) {
        int c = UART_DATA & 0xff;
        if (c == mp_interrupt_char) {
            mp_sched_keyboard_interrupt();
            got = 1;
            continue;
        }
        uint16_t next = (rx_head + 1) % RX_BUF_SIZE;
        if (next != rx_tail) {
            rx_buf[rx_head] = c;
            rx_head = next;
        }
        got = 1;
    }
    if (got) {
        mp_freertos_wake_main();
    }
}

int uart_rx_any(void) {
    return rx_tail != rx_head;
}

int uart_rx_chr(void) {
    if (rx_tail == rx_head) {
        return -1;
    }
    int c = rx_buf[rx_tail];
    rx_tail = (rx_tail + 1) % RX_BUF_SIZE;
    return c;
}

void uart_tx_strn(const char *buf, size_t len) {
    for (size_t i = 0; i < len; ++i) {
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = (uint8_t)buf[i];
    }
}
