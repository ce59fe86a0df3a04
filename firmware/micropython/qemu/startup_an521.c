// Reset handlers, vector tables and fault reports for the two Cortex-M33 cores of QEMU mps2-an521
// (SSE-200). Core 0 boots from the table at the start of code; core 1 waits in reset until the
// SMP port's xPortStartScheduler() points it at its own table and releases it.
#include <stdint.h>
#include <string.h>

#include "FreeRTOS.h"

#include "fatal.h"
#include "uart.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack, _estack_core1;

int main(void);

#define CPACR (*(volatile uint32_t *)0xe000ed88)

// Full access to CP10/CP11 (the FPU) for this core, before any floating-point instruction.
static inline void fpu_enable(void) {
    CPACR |= 0xf << 20;
    __asm volatile ("dsb\n isb" ::: "memory");
}

void Reset_Handler(void) {
    fpu_enable();
    memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
    memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
    main();
    for (;;) {
    }
}

#if configNUMBER_OF_CORES > 1
// Core 1 starts on its own main stack (first word of its table), data and bss already set up by
// core 0.
static void Core1_Reset_Handler(void) {
    fpu_enable();
    vPortCore1Main();
}
#endif

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

// 16 system exceptions, then 48 interrupts: MHU0 = 6 (the SMP port's cross-core doorbell),
// UART0 RX = 32. Every interrupt reaches both cores; each enables only the ones it serves.
#if configNUMBER_OF_CORES > 1
#define DOORBELL_VECTOR [16 + 6] = vPortDoorbellHandler,
#else
#define DOORBELL_VECTOR
#endif
#define VECTORS(stack, reset) { \
        (vector_t)(uintptr_t)(stack), \
        (reset), \
        NMI_Handler, \
        HardFault_Handler, \
        Other_Fault_Handler, \
        Other_Fault_Handler, \
        Other_Fault_Handler, \
        Other_Fault_Handler, \
        0, 0, 0, \
        SVC_Handler, \
        Default_Handler, \
        0, \
        PendSV_Handler, \
        SysTick_Handler, \
        [16 ... 16 + 47] = Default_Handler, \
        DOORBELL_VECTOR \
        [16 + 32] = uart0_rx_irq_handler, \
}

__attribute__((section(".vectors"), used)) static const vector_t vectors[16 + 48] =
    VECTORS(&_estack, Reset_Handler);

#if configNUMBER_OF_CORES > 1
// VTOR needs the table aligned to its size rounded up to a power of two.
__attribute__((aligned(256), used)) const vector_t ulPortCore1Vectors[16 + 48] =
    VECTORS(&_estack_core1, Core1_Reset_Handler);
#endif
