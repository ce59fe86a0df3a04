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

// Transmit lock: each uart_tx_strn() call, and each cooked write (mphalport.c) around it, goes
// out whole, as one write(2) does on the unix port.
// With the GIL off, threads on two cores print at once, and a core that faults reports it while
// the other may be in the middle of a string; unlocked, the bytes interleave, and the host that
// waits for a line ("r\r\nFATAL HardFault core=1\r\nunning") never sees it. The owner is the
// writing task, or 1 + the core in an interrupt or with interrupts masked (a fault report).
//
// A task holding the lock may be preempted, so a task waits by sleeping a tick at a time once a
// short spin (another core finishing its string) has not got it. A writer that may not sleep (a
// fault report) spins a bounded while, and only for a holder running on the other core. A writer
// that waited its bound takes the lock over: the holder may never release it (a thread deleted
// by a soft reset while it printed, a core parked after a fault), and interleaved output beats
// none.
#define TX_LOCK_SPINS (2000)
#define TX_LOCK_WAIT_TICKS (pdMS_TO_TICKS(200) + 1)
#define TX_LOCK_FATAL_SPINS (1000000)

static volatile uintptr_t tx_owner;

static int tx_may_sleep(void) {
    uint32_t ipsr, primask, basepri;
    __asm volatile ("mrs %0, ipsr" : "=r" (ipsr));
    __asm volatile ("mrs %0, primask" : "=r" (primask));
    __asm volatile ("mrs %0, basepri" : "=r" (basepri));
    return ipsr == 0 && primask == 0 && basepri == 0
           && xTaskGetSchedulerState() == taskSCHEDULER_RUNNING;
}

static int tx_try_lock(uintptr_t me, uintptr_t *seen) {
    uintptr_t expected = 0;
    if (__atomic_compare_exchange_n(&tx_owner, &expected, me, false, __ATOMIC_ACQUIRE,
        __ATOMIC_RELAXED)) {
        return 1;
    }
    *seen = expected;
    return 0;
}

uintptr_t uart_tx_lock(void) {
    int may_sleep = tx_may_sleep();
    uintptr_t me;
    if (may_sleep) {
        me = (uintptr_t)xTaskGetCurrentTaskHandle();
    } else {
        me = 1 + (uintptr_t)portGET_CORE_ID();
    }
    if (tx_owner == me) {
        return 0;
    }
    uintptr_t seen = 0;
    unsigned spins = may_sleep ? TX_LOCK_SPINS : TX_LOCK_FATAL_SPINS;
    #if configNUMBER_OF_CORES > 1
    if (!may_sleep && tx_owner == (uintptr_t)xTaskGetCurrentTaskHandleForCore(portGET_CORE_ID())) {
        spins = 0; // the holder is the task this core interrupted: it cannot finish meanwhile
    }
    #else
    if (!may_sleep) {
        spins = 0; // the holder cannot run while this core does not let it
    }
    #endif
    TickType_t waited = 0;
    for (;;) {
        for (unsigned i = 0; i < spins; i++) {
            if (tx_owner == 0 && tx_try_lock(me, &seen)) {
                return me;
            }
        }
        seen = tx_owner;
        if (!may_sleep || waited >= TX_LOCK_WAIT_TICKS) {
            break;
        }
        vTaskDelay(1);
        waited++;
    }
    // Take it over from the holder seen last (or from nobody, if it has just gone).
    if (seen != 0 && __atomic_compare_exchange_n(&tx_owner, &seen, me, false, __ATOMIC_ACQUIRE,
        __ATOMIC_RELAXED)) {
        return me;
    }
    return tx_try_lock(me, &seen) ? me : 0;
}

void uart_tx_unlock(uintptr_t me) {
    if (me == 0) {
        return; // the outer holder releases
    }
    uintptr_t expected = me;
    // Fails only if a waiter took the lock over meanwhile: it is then the waiter's to release.
    __atomic_compare_exchange_n(&tx_owner, &expected, 0, false, __ATOMIC_RELEASE,
        __ATOMIC_RELAXED);
}

void uart_tx_strn(const char *buf, size_t len) {
    uintptr_t me = uart_tx_lock();
    for (size_t i = 0; i < len; ++i) {
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = (uint8_t)buf[i];
    }
    uart_tx_unlock(me);
}
