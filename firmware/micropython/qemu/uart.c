// CMSDK UART0: see uart.h. Ctrl-C (the interrupt character) is handled in the interrupt, so it
// stops a running program even when nothing reads stdin.
#include <stdint.h>

#include "py/runtime.h"
#include "py/mphal.h"
#include "shared/runtime/interrupt_char.h"
#include "FreeRTOS.h"
#include "task.h"

#include "uart.h"

// mps2-an521 (Cortex-M33, __ARM_ARCH_8M_MAIN__) or mps2-an385 (Cortex-M3).
#if defined(__ARM_ARCH_8M_MAIN__)
#define UART0_BASE (0x50200000)
#define IRQ_UART0_RX (32)
#else
#define UART0_BASE (0x40004000)
#define IRQ_UART0_RX (0)
#endif
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

#define NVIC_ISER ((volatile uint32_t *)0xe000e100)
#define NVIC_IPR ((volatile uint8_t *)0xe000e400)

// Receive ring. When it is full the interrupt leaves the next byte in the UART's data register:
// QEMU then takes nothing more from the host side (the UART reports itself full), so a script
// sent without raw-paste flow control waits in the host's pty buffer instead of being dropped.
// The reader moves the held-back bytes over once it has made room (rx_refill).
#define RX_BUF_SIZE (4096)

static volatile uint8_t rx_buf[RX_BUF_SIZE];
static volatile uint16_t rx_head, rx_tail;
static volatile uint8_t rx_throttled;

void uart_init(void) {
    UART_BAUDDIV = 16;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_IRQ_EN;
    // Lowest priority: below configMAX_SYSCALL_INTERRUPT_PRIORITY, so FreeRTOS calls are legal.
    NVIC_IPR[IRQ_UART0_RX] = 0xe0;
    // On two cores the interrupt reaches both NVICs: only core 0 (running this) enables it.
    NVIC_ISER[IRQ_UART0_RX / 32] = 1 << (IRQ_UART0_RX % 32);
}

// Moves received bytes into the ring while there is room; returns whether any arrived (Ctrl-C
// included). Called with the kernel's critical section held: the interrupt (core 0) and a reader
// refilling after a stall (any core) both produce into the ring.
static int rx_drain(void) {
    int got = 0;
    while (UART_STATE & UART_STATE_RXFULL) {
        uint16_t next = (rx_head + 1) % RX_BUF_SIZE;
        if (next == rx_tail) {
            // Full: hold this byte (and so everything behind it) back until the reader catches up.
            rx_throttled = 1;
            break;
        }
        int c = UART_DATA & 0xff;
        got = 1;
        if (c == mp_interrupt_char) {
            mp_sched_keyboard_interrupt();
            continue;
        }
        rx_buf[rx_head] = c;
        rx_head = next;
    }
    return got;
}

void uart0_rx_irq_handler(void) {
    UART_INTCLEAR = UART_INT_RX;
    UBaseType_t state = taskENTER_CRITICAL_FROM_ISR();
    int got = rx_drain();
    taskEXIT_CRITICAL_FROM_ISR(state);
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
    if (rx_throttled) {
        // The interrupt stopped at a full ring and, with the byte left in the UART, no further
        // receive interrupt comes: take the held-back bytes now.
        taskENTER_CRITICAL();
        rx_throttled = 0;
        rx_drain();
        taskEXIT_CRITICAL();
    }
    return c;
}

void uart_tx_strn(const char *buf, size_t len) {
    for (size_t i = 0; i < len; ++i) {
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = (uint8_t)buf[i];
    }
}
