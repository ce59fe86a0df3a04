/* Reset handler and vector table for the Cortex-M3 of QEMU mps2-an385. */
#include <stdint.h>
#include <string.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

int main(void);
void SVC_Handler(void);
void PendSV_Handler(void);
void SysTick_Handler(void);
void ref_uart0_rx_irq(void);
void ref_timer0_irq(void);
void ref_fault(const char *what);

void Reset_Handler(void) {
    memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
    memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
    main();
    for (;;) {
    }
}

static void NMI_Handler(void) {
    ref_fault("NMI");
}

static void HardFault_Handler(void) {
    ref_fault("HardFault");
}

static void Other_Fault_Handler(void) {
    ref_fault("fault");
}

static void Default_Handler(void) {
    ref_fault("unexpected interrupt");
}

typedef void (*vector_t)(void);

/* 16 system exceptions, then 32 external interrupts (UART0 RX = 0, TIMER0 = 8). */
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
    [16 + 0] = ref_uart0_rx_irq,
    [16 + 1] = Default_Handler,
    [16 + 2] = Default_Handler,
    [16 + 3] = Default_Handler,
    [16 + 4] = Default_Handler,
    [16 + 5] = Default_Handler,
    [16 + 6] = Default_Handler,
    [16 + 7] = Default_Handler,
    [16 + 8] = ref_timer0_irq,
    [16 + 9] = Default_Handler,
    [16 + 10] = Default_Handler,
    [16 + 11] = Default_Handler,
    [16 + 12] = Default_Handler,
    [16 + 13] = Default_Handler,
    [16 + 14] = Default_Handler,
    [16 + 15] = Default_Handler,
    [16 + 16] = Default_Handler,
    [16 + 17] = Default_Handler,
    [16 + 18] = Default_Handler,
    [16 + 19] = Default_Handler,
    [16 + 20] = Default_Handler,
    [16 + 21] = Default_Handler,
    [16 + 22] = Default_Handler,
    [16 + 23] = Default_Handler,
    [16 + 24] = Default_Handler,
    [16 + 25] = Default_Handler,
    [16 + 26] = Default_Handler,
    [16 + 27] = Default_Handler,
    [16 + 28] = Default_Handler,
    [16 + 29] = Default_Handler,
    [16 + 30] = Default_Handler,
    [16 + 31] = Default_Handler,
};
