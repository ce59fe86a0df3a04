/* CMSDK UART0 (console), TIMER0 (periodic interrupt) and TIMER1 (run-time stats counter) of the
 * two QEMU machines the reference firmware runs on: mps2-an385 (Cortex-M3) and mps2-an521
 * (2x Cortex-M33, SSE-200; secure aliases). The CPU the firmware is built for tells them apart. */
#include "board.h"

#include "FreeRTOS.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#if defined(__ARM_ARCH_8M_MAIN__)
/* mps2-an521. Interrupts reach both cores; these are enabled on core 0, which runs board_init(). */
#define UART0 0x50200000u
#define TIMER0 0x50000000u
#define TIMER1 0x50001000u
#define IRQ_UART0_RX 32
#define IRQ_TIMER0 3
#else
/* mps2-an385 */
#define UART0 0x40004000u
#define TIMER0 0x40000000u
#define TIMER1 0x40001000u
#define IRQ_UART0_RX 0
#define IRQ_TIMER0 8
#endif

#define UART_DATA 0x00u
#define UART_STATE 0x04u
#define UART_CTRL 0x08u
#define UART_INT 0x0Cu
#define UART_BAUDDIV 0x10u
#define UART_STATE_TXFULL 1u
#define UART_STATE_RXFULL 2u

#define TIMER_CTRL 0x00u
#define TIMER_VALUE 0x04u
#define TIMER_RELOAD 0x08u
#define TIMER_INT 0x0Cu

#define NVIC_ISER0 0xE000E100u
#define NVIC_IPR 0xE000E400u

static volatile uint8_t rx_buf[128];
static volatile uint8_t rx_head, rx_tail;

static void nvic_enable(unsigned irq) {
    /* Lowest priority: below configMAX_SYSCALL_INTERRUPT_PRIORITY, so FromISR calls are legal. */
    *(volatile uint8_t *)(NVIC_IPR + irq) = 0xE0;
    REG(NVIC_ISER0 + 4 * (irq / 32)) = 1u << (irq % 32);
}

void board_init(void) {
    REG(UART0 + UART_BAUDDIV) = configCPU_CLOCK_HZ / 115200;
    REG(UART0 + UART_CTRL) = 1u | 2u | 8u; /* TX, RX, RX interrupt */
    nvic_enable(IRQ_UART0_RX);
}

void ref_runtime_init(void) {
    REG(TIMER1 + TIMER_CTRL) = 0;
    REG(TIMER1 + TIMER_RELOAD) = 0xFFFFFFFFu;
    REG(TIMER1 + TIMER_VALUE) = 0xFFFFFFFFu;
    REG(TIMER1 + TIMER_CTRL) = 1u;
}

unsigned long ref_runtime_now(void) {
    /* TIMER1 counts down; the run-time counter must count up. On an521 both cores read this one
     * timer, so run times on either core add up against the same clock. */
    return 0xFFFFFFFFul - REG(TIMER1 + TIMER_VALUE);
}

void board_timer0_start(uint32_t hz) {
    REG(TIMER0 + TIMER_CTRL) = 0;
    REG(TIMER0 + TIMER_RELOAD) = configCPU_CLOCK_HZ / hz - 1;
    REG(TIMER0 + TIMER_VALUE) = configCPU_CLOCK_HZ / hz - 1;
    REG(TIMER0 + TIMER_CTRL) = 1u | 8u; /* enable, interrupt */
    nvic_enable(IRQ_TIMER0);
}

void ref_timer0_irq(void) {
    REG(TIMER0 + TIMER_INT) = 1u;
    ref_timer_tick();
}

void ref_uart0_rx_irq(void) {
    REG(UART0 + UART_INT) = 2u;
    while (REG(UART0 + UART_STATE) & UART_STATE_RXFULL) {
        uint8_t c = (uint8_t)REG(UART0 + UART_DATA);
        uint8_t next = (uint8_t)((rx_head + 1) % sizeof rx_buf);
        if (next != rx_tail) {
            rx_buf[rx_head] = c;
            rx_head = next;
        }
    }
    ref_console_rx();
}

int uart_getc(void) {
    if (rx_tail == rx_head) {
        return -1;
    }
    int c = rx_buf[rx_tail];
    rx_tail = (uint8_t)((rx_tail + 1) % sizeof rx_buf);
    return c;
}

void uart_putc(char c) {
    while (REG(UART0 + UART_STATE) & UART_STATE_TXFULL) {
    }
    REG(UART0 + UART_DATA) = (uint8_t)c;
}

void uart_puts(const char *s) {
    while (*s) {
        if (*s == '\n') {
            uart_putc('\r');
        }
        uart_putc(*s++);
    }
}
