// Reset handler, vector table and fault reports for the Cortex-M3 of QEMU mps2-an385.
#include <stdint.h>
#include <string.h>

#include "fatal.h"
#include "uart.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

int main(void);
void SVC_Handler(void);
void PendSV_Handler(void);
void SysTick_Handler(void);

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
