/* FreeRTOS SMP port for the two Cortex-M33 cores of QEMU mps2-an521 (SSE-200), GCC.
 *
 * Both cores run the same kernel in secure state. Core 0 starts the scheduler, owns the tick
 * (SysTick) and releases core 1 from reset; a task made ready for the other core reaches it as a
 * doorbell interrupt through the MHU0 mailbox, whose handler pends PendSV there. The kernel's task
 * and ISR locks are fair ticket locks in RAM (the SSE-200 has no hardware spinlocks). */
#include "FreeRTOS.h"
#include "task.h"

/* ---- machine ---- */

#define REG(addr) (*(volatile uint32_t *)(addr))

/* SSE-200 system control (secure): core 1's reset vector table and its wait-at-reset bit. */
#define SYSCTL_INITSVTOR1 0x50021114UL
#define SYSCTL_CPUWAIT 0x50021118UL
#define CPUWAIT_CORE1 (1UL << 1)

/* MHU0 (secure alias): one doorbell register block per core; writing SET raises IRQ 6 there. */
#define MHU0 0x50003000UL
#define MHU_STAT(core) (MHU0 + 0x10UL * (uint32_t)(core) + 0x00UL)
#define MHU_SET(core) (MHU0 + 0x10UL * (uint32_t)(core) + 0x04UL)
#define MHU_CLR(core) (MHU0 + 0x10UL * (uint32_t)(core) + 0x08UL)
#define MHU0_IRQ 6

/* System control block and NVIC (each core has its own). */
#define SCB_SHPR3 0xE000ED20UL
#define SYST_CSR 0xE000E010UL
#define SYST_RVR 0xE000E014UL
#define SYST_CVR 0xE000E018UL
#define NVIC_ISER0 0xE000E100UL
#define NVIC_ICPR0 0xE000E280UL
#define NVIC_IPR 0xE000E400UL
#define FPU_FPCCR 0xE000EF34UL

#define LOWEST_PRIORITY 0xFFUL
#define INITIAL_XPSR 0x01000000UL
/* Return to thread mode, secure, process stack, no FP frame, callee registers not stacked. */
#define INITIAL_EXC_RETURN 0xFFFFFFFDUL

#if configNUMBER_OF_CORES > 1
#define CURRENT_TCB_ARRAY "pxCurrentTCBs"
#else
#define CURRENT_TCB_ARRAY "pxCurrentTCB"
#endif

volatile UBaseType_t uxPortCriticalNesting[configNUMBER_OF_CORES];
PortTicketLock_t xPortTaskLock, xPortISRLock;

/* Doorbells rung to and taken by each core, and the time from the ring to the handler on the
 * other core (run-time counter units; the last ring wins when two arrive before the handler runs).
 * The reference firmware's `smp` command prints them. */
volatile uint32_t ulPortDoorbellsRung[portMAX_CORE_COUNT], ulPortDoorbellsTaken[portMAX_CORE_COUNT];
PortDoorbellLatency_t xPortDoorbellLatency[portMAX_CORE_COUNT];
/* The same, up to the end of the context switch the doorbell asked for (vTaskSwitchContext()
 * done, the next task about to be restored): the whole cross-core yield. */
PortDoorbellLatency_t xPortYieldLatency[portMAX_CORE_COUNT];
#if configGENERATE_RUN_TIME_STATS == 1
static volatile uint32_t ulRungAt[portMAX_CORE_COUNT];
/* Ring time of the doorbell whose switch is still to come, and whether there is one. */
static uint32_t ulSwitchRungAt[portMAX_CORE_COUNT], ulSwitchAwaited[portMAX_CORE_COUNT];
#define DOORBELL_NOW() ((uint32_t)portGET_RUN_TIME_COUNTER_VALUE())

static void prvRecordLatency(PortDoorbellLatency_t *pxLat, uint32_t ulDelta) {
    if (pxLat->ulCount == 0 || ulDelta < pxLat->ulMin) {
        pxLat->ulMin = ulDelta;
    }
    if (ulDelta > pxLat->ulMax) {
        pxLat->ulMax = ulDelta;
    }
    pxLat->ulSum += ulDelta;
    pxLat->ulCount++;
}
#endif

static void prvTaskExitError(void) {
    /* A task function returned; FreeRTOS tasks must delete themselves instead. */
    configASSERT(0);
    portDISABLE_INTERRUPTS();
    for (;;) {
    }
}

/* Frame of a task that has not run yet, as PendSV leaves a switched-out task:
 * r4-r11, EXC_RETURN, then what the exception entry stacks (r0-r3, r12, lr, pc, xPSR). */
StackType_t *pxPortInitialiseStack(StackType_t *pxTopOfStack, TaskFunction_t pxCode, void *pvParameters) {
    *--pxTopOfStack = INITIAL_XPSR;
    *--pxTopOfStack = (StackType_t)pxCode & ~1UL;
    *--pxTopOfStack = (StackType_t)prvTaskExitError;
    pxTopOfStack -= 4; /* r12, r3, r2, r1 */
    *--pxTopOfStack = (StackType_t)pvParameters; /* r0 */
    *--pxTopOfStack = INITIAL_EXC_RETURN;
    pxTopOfStack -= 8; /* r11..r4 */
    return pxTopOfStack;
}

/* ---- ticket locks ---- */

void vPortTicketLock(PortTicketLock_t *pxLock) {
    uint32_t ulTicket = __atomic_fetch_add(&pxLock->ulNext, 1, __ATOMIC_RELAXED);
    while (pxLock->ulServing != ulTicket) {
        /* Sleeps until the unlocking core's SEV on hardware; QEMU treats it as a yield. */
        __asm volatile ("wfe" ::: "memory");
    }
    __asm volatile ("dmb" ::: "memory");
}

void vPortTicketUnlock(PortTicketLock_t *pxLock) {
    __asm volatile ("dmb" ::: "memory");
    /* Only the owner writes ulServing, so a plain increment is enough. */
    pxLock->ulServing = pxLock->ulServing + 1;
    __asm volatile ("dsb\n sev" ::: "memory");
}

void vPortRecursiveLock(PortTicketLock_t *pxLock, BaseType_t xCoreID) {
    uint32_t ulMe = (uint32_t)xCoreID + 1;
    /* Only this core ever writes its own id here, so the read needs no lock. */
    if (pxLock->ulOwner == ulMe) {
        configASSERT(pxLock->ulDepth < 0xFFFFUL);
        pxLock->ulDepth++;
        return;
    }
    vPortTicketLock(pxLock);
    configASSERT(pxLock->ulDepth == 0);
    pxLock->ulOwner = ulMe;
    pxLock->ulDepth = 1;
}

void vPortRecursiveUnlock(PortTicketLock_t *pxLock, BaseType_t xCoreID) {
    configASSERT(pxLock->ulOwner == (uint32_t)xCoreID + 1);
    configASSERT(pxLock->ulDepth != 0);
    if (--pxLock->ulDepth == 0) {
        pxLock->ulOwner = 0;
        vPortTicketUnlock(pxLock);
    }
}

/* ---- yields ---- */

void vPortYield(void) {
    portNVIC_INT_CTRL_REG = portNVIC_PENDSVSET_BIT;
    __asm volatile ("dsb\n isb" ::: "memory");
}

void vPortYieldCore(BaseType_t xCoreID) {
    configASSERT(xCoreID != portGET_CORE_ID());
    ulPortDoorbellsRung[xCoreID]++;
#ifdef DOORBELL_NOW
    ulRungAt[xCoreID] = DOORBELL_NOW();
#endif
    __asm volatile ("dsb" ::: "memory");
    REG(MHU_SET(xCoreID)) = 1;
}

void vPortDoorbellHandler(void) {
    BaseType_t xCoreID = portGET_CORE_ID();
    REG(MHU_CLR(xCoreID)) = REG(MHU_STAT(xCoreID));
    ulPortDoorbellsTaken[xCoreID]++;
#ifdef DOORBELL_NOW
    prvRecordLatency(&xPortDoorbellLatency[xCoreID], DOORBELL_NOW() - ulRungAt[xCoreID]);
    ulSwitchRungAt[xCoreID] = ulRungAt[xCoreID];
    ulSwitchAwaited[xCoreID] = 1;
#endif
    /* The ringing core already chose this core's next task; PendSV picks it up. */
    portYIELD_FROM_ISR(pdTRUE);
}

void xPortSysTickHandler(void) {
    UBaseType_t uxSaved = taskENTER_CRITICAL_FROM_ISR();
    if (xTaskIncrementTick() != pdFALSE) {
        portNVIC_INT_CTRL_REG = portNVIC_PENDSVSET_BIT;
    }
    taskEXIT_CRITICAL_FROM_ISR(uxSaved);
}

/* ---- context switch ---- */

/* PendSV calls this once vTaskSwitchContext() has chosen, with interrupts masked: when a doorbell
 * asked for the switch, the cross-core yield is complete. */
void vPortSwitched(void) {
#ifdef DOORBELL_NOW
    BaseType_t xCoreID = portGET_CORE_ID();
    if (ulSwitchAwaited[xCoreID]) {
        ulSwitchAwaited[xCoreID] = 0;
        prvRecordLatency(&xPortYieldLatency[xCoreID], DOORBELL_NOW() - ulSwitchRungAt[xCoreID]);
    }
#endif
}

/* Saves the outgoing task (r4-r11, EXC_RETURN, and s16-s31 if it used the FPU; the exception entry
 * stacked the rest, s0-s15 lazily), lets the kernel choose for this core with interrupts up to
 * the syscall priority masked, and restores the chosen task. */
__attribute__((naked)) void xPortPendSVHandler(void) {
    __asm volatile (
        "   .syntax unified                 \n"
        "   mrs r0, psp                     \n"
        "   isb                             \n"
        "   ldr r2, =0x5001F000             \n" /* CPU_IDENTITY */
        "   ldr r2, [r2]                    \n"
        "   ldr r3, =" CURRENT_TCB_ARRAY "  \n"
        "   add r3, r3, r2, lsl #2          \n" /* r3 = &pxCurrentTCBs[core] */
        "   ldr r1, [r3]                    \n"
        "   tst lr, #0x10                   \n" /* FP frame on the task stack? */
        "   it eq                           \n"
        "   vstmdbeq r0!, {s16-s31}         \n"
        "   stmdb r0!, {r4-r11, lr}         \n"
        "   str r0, [r1]                    \n" /* pxTopOfStack */
        "   mov r4, r3                      \n"
        "   mov r0, r2                      \n" /* vTaskSwitchContext(core) */
        "   mov r1, %0                      \n"
        "   msr basepri, r1                 \n"
        "   dsb                             \n"
        "   isb                             \n"
        "   bl vTaskSwitchContext           \n"
        "   bl vPortSwitched                \n"
        "   mov r0, #0                      \n"
        "   msr basepri, r0                 \n"
        "   ldr r1, [r4]                    \n"
        "   ldr r0, [r1]                    \n"
        "   ldmia r0!, {r4-r11, lr}         \n"
        "   tst lr, #0x10                   \n"
        "   it eq                           \n"
        "   vldmiaeq r0!, {s16-s31}         \n"
        "   msr psp, r0                     \n"
        "   isb                             \n"
        "   bx lr                           \n"
        "   .ltorg                          \n"
        :: "i" (configMAX_SYSCALL_INTERRUPT_PRIORITY)
    );
}

/* SVC 0 starts the first task on the calling core. */
__attribute__((naked)) void vPortSVCHandler(void) {
    __asm volatile (
        "   .syntax unified                 \n"
        "   ldr r2, =0x5001F000             \n"
        "   ldr r2, [r2]                    \n"
        "   ldr r3, =" CURRENT_TCB_ARRAY "  \n"
        "   ldr r1, [r3, r2, lsl #2]        \n"
        "   ldr r0, [r1]                    \n"
        "   ldmia r0!, {r4-r11, lr}         \n"
        "   tst lr, #0x10                   \n"
        "   it eq                           \n"
        "   vldmiaeq r0!, {s16-s31}         \n"
        "   msr psp, r0                     \n"
        "   isb                             \n"
        "   mov r0, #0                      \n"
        "   msr basepri, r0                 \n"
        "   bx lr                           \n"
        "   .ltorg                          \n"
    );
}

/* Resets MSP to the top of this core's main stack (the first word of its vector table: only
 * interrupts use it from now on) and asks SVC to start the first task. */
__attribute__((naked, noreturn)) static void prvStartFirstTask(void) {
    __asm volatile (
        "   .syntax unified                 \n"
        "   ldr r0, =0xE000ED08             \n" /* VTOR */
        "   ldr r0, [r0]                    \n"
        "   ldr r0, [r0]                    \n"
        "   msr msp, r0                     \n"
        "   cpsie i                         \n"
        "   cpsie f                         \n"
        "   dsb                             \n"
        "   isb                             \n"
        "   svc 0                           \n"
        "   nop                             \n"
        "   .ltorg                          \n"
    );
}

/* What each core sets up for itself: PendSV and SysTick at the lowest priority, the FPU's lazy
 * stacking, and its own MHU doorbell. */
static void prvCoreSetup(BaseType_t xCoreID) {
    REG(SCB_SHPR3) |= (LOWEST_PRIORITY << 16) | (LOWEST_PRIORITY << 24);
    REG(FPU_FPCCR) |= (1UL << 31) | (1UL << 30); /* ASPEN, LSPEN */
#if configNUMBER_OF_CORES > 1
    REG(MHU_CLR(xCoreID)) = REG(MHU_STAT(xCoreID));
    *(volatile uint8_t *)(NVIC_IPR + MHU0_IRQ) = (uint8_t)configKERNEL_INTERRUPT_PRIORITY;
    REG(NVIC_ICPR0) = 1UL << MHU0_IRQ;
    REG(NVIC_ISER0) = 1UL << MHU0_IRQ;
#else
    (void)xCoreID;
#endif
}

#if configNUMBER_OF_CORES > 1
/* Core 1's vector table (reset vector: the board's core-1 reset handler, which calls
 * vPortCore1Main). The board's startup file defines it. */
extern const uint32_t ulPortCore1Vectors[];

void vPortCore1Main(void) {
    portDISABLE_INTERRUPTS();
    prvCoreSetup(1);
    prvStartFirstTask();
}
#endif

BaseType_t xPortStartScheduler(void) {
    configASSERT(portGET_CORE_ID() == 0);
    prvCoreSetup(0);
    /* The tick lives on core 0 only: xTaskIncrementTick() asks the other core to yield when its
     * time slice is up, so core 1 needs no SysTick of its own. */
    REG(SYST_CSR) = 0;
    REG(SYST_CVR) = 0;
    REG(SYST_RVR) = configCPU_CLOCK_HZ / configTICK_RATE_HZ - 1UL;
    REG(SYST_CSR) = (1UL << 2) | (1UL << 1) | 1UL; /* processor clock, interrupt, enable */
#if configNUMBER_OF_CORES > 1
    /* Release core 1: it boots from its own vector table and joins the scheduler. */
    REG(SYSCTL_INITSVTOR1) = (uint32_t)ulPortCore1Vectors;
    __asm volatile ("dsb" ::: "memory");
    REG(SYSCTL_CPUWAIT) &= ~CPUWAIT_CORE1;
#endif
    prvStartFirstTask();
    return 0;
}

void vPortEndScheduler(void) {
    /* Not supported: the scheduler never returns on this machine. */
    configASSERT(0);
}

#if configNUMBER_OF_CORES == 1
void vPortEnterCritical(void) {
    portDISABLE_INTERRUPTS();
    uxPortCriticalNesting[0]++;
}

void vPortExitCritical(void) {
    configASSERT(uxPortCriticalNesting[0]);
    if (--uxPortCriticalNesting[0] == 0) {
        portENABLE_INTERRUPTS();
    }
}
#endif
