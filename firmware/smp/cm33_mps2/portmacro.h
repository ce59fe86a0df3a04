/* FreeRTOS SMP port for the two Cortex-M33 cores of QEMU mps2-an521 (SSE-200), GCC.
 *
 * Written for mpfr after the kernel's RP2040 SMP port (the logic: one task lock and one ISR lock,
 * a cross-core yield interrupt, the tick on core 0) and its ARM_CM33_NTZ port (the Armv8-M
 * context switch with lazy FPU stacking). Runs as secure code without using TrustZone or the MPU.
 * Machine facts the port relies on (CPU_IDENTITY, MHU0, CPUWAIT) are in port.c; docs/firmware.md
 * ("The mps2-an521 SMP port") explains the choices. */
#ifndef PORTMACRO_H
#define PORTMACRO_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define portCHAR char
#define portFLOAT float
#define portDOUBLE double
#define portLONG long
#define portSHORT short
#define portSTACK_TYPE uint32_t
#define portBASE_TYPE long

typedef portSTACK_TYPE StackType_t;
typedef int32_t BaseType_t;
typedef uint32_t UBaseType_t;

#if configTICK_TYPE_WIDTH_IN_BITS == TICK_TYPE_WIDTH_32_BITS
typedef uint32_t TickType_t;
#define portMAX_DELAY (TickType_t)0xffffffffUL
#define portTICK_TYPE_IS_ATOMIC 1
#else
#error "the mps2-an521 port supports 32-bit ticks only"
#endif

#define portSTACK_GROWTH (-1)
#define portTICK_PERIOD_MS ((TickType_t)1000 / configTICK_RATE_HZ)
#define portBYTE_ALIGNMENT 8
#define portDONT_DISCARD __attribute__((used))
#define portNOP() __asm volatile ("nop")
#define portMEMORY_BARRIER() __asm volatile ("" ::: "memory")

#define portTASK_FUNCTION_PROTO(vFunction, pvParameters) void vFunction(void *pvParameters)
#define portTASK_FUNCTION(vFunction, pvParameters) void vFunction(void *pvParameters)

/* ---- cores ---- */

#define portMAX_CORE_COUNT 2
#if configNUMBER_OF_CORES < 1 || configNUMBER_OF_CORES > portMAX_CORE_COUNT
#error "mps2-an521 has two cores: configNUMBER_OF_CORES must be 1 or 2"
#endif

/* The tick runs on core 0, which starts the scheduler (port.c). */
#if defined(configTICK_CORE) && configTICK_CORE != 0
#error "the mps2-an521 port ticks on core 0: configTICK_CORE must be 0"
#endif

/* SSE-200 CPU_IDENTITY register: 0 on core 0, 1 on core 1. */
#define portCPU_IDENTITY (*(volatile uint32_t *)0x5001F000UL)
#if configNUMBER_OF_CORES > 1
#define portGET_CORE_ID() ((BaseType_t)portCPU_IDENTITY)
#else
#define portGET_CORE_ID() ((BaseType_t)0)
#endif

#define portCHECK_IF_IN_ISR() ({ \
        uint32_t ulIPSR; \
        __asm volatile ("mrs %0, ipsr" : "=r" (ulIPSR)); \
        ulIPSR != 0; \
    })

/* The kernel checks with this that task-level calls (taskENTER_CRITICAL(),
 * xTaskGetSchedulerState() on SMP) are not made from an interrupt: there they can spin forever
 * waiting for a yield the handler blocks, so a fatal assert is the better outcome. */
#define portASSERT_IF_IN_ISR() configASSERT(portCHECK_IF_IN_ISR() == 0)

static inline BaseType_t xPortIsInsideInterrupt(void) {
    return portCHECK_IF_IN_ISR() ? pdTRUE : pdFALSE;
}

/* ---- yields ---- */

#define portNVIC_INT_CTRL_REG (*(volatile uint32_t *)0xE000ED04UL)
#define portNVIC_PENDSVSET_BIT (1UL << 28UL)

void vPortYield(void);
#define portYIELD() vPortYield()
#define portEND_SWITCHING_ISR(xSwitchRequired) \
    do { \
        if (xSwitchRequired) { \
            portNVIC_INT_CTRL_REG = portNVIC_PENDSVSET_BIT; \
        } \
    } while (0)
#define portYIELD_FROM_ISR(x) portEND_SWITCHING_ISR(x)

/* Rings the other core's MHU doorbell; its handler pends PendSV there. */
void vPortYieldCore(BaseType_t xCoreID);
#define portYIELD_CORE(xCoreID) vPortYieldCore(xCoreID)

/* ---- interrupt masking: BASEPRI, so interrupts above the syscall priority stay live ---- */

static inline uint32_t ulPortRaiseBASEPRI(void) {
    uint32_t ulOld, ulNew = configMAX_SYSCALL_INTERRUPT_PRIORITY;
    __asm volatile (
        "mrs %0, basepri\n"
        "msr basepri, %1\n"
        "dsb\n"
        "isb\n"
        : "=&r" (ulOld) : "r" (ulNew) : "memory");
    return ulOld;
}

static inline void vPortSetBASEPRI(uint32_t ulValue) {
    __asm volatile ("msr basepri, %0" :: "r" (ulValue) : "memory");
}

#define portDISABLE_INTERRUPTS() ((void)ulPortRaiseBASEPRI())
#define portENABLE_INTERRUPTS() vPortSetBASEPRI(0)
#define portSET_INTERRUPT_MASK() ulPortRaiseBASEPRI()
#define portCLEAR_INTERRUPT_MASK(x) vPortSetBASEPRI(x)
#define portSET_INTERRUPT_MASK_FROM_ISR() ulPortRaiseBASEPRI()
#define portCLEAR_INTERRUPT_MASK_FROM_ISR(x) vPortSetBASEPRI(x)

/* ---- critical sections ---- */

#define portCRITICAL_NESTING_IN_TCB 0
extern volatile UBaseType_t uxPortCriticalNesting[configNUMBER_OF_CORES];
#define portGET_CRITICAL_NESTING_COUNT(xCoreID) (uxPortCriticalNesting[(xCoreID)])
#define portSET_CRITICAL_NESTING_COUNT(xCoreID, x) (uxPortCriticalNesting[(xCoreID)] = (x))
#define portINCREMENT_CRITICAL_NESTING_COUNT(xCoreID) (uxPortCriticalNesting[(xCoreID)]++)
#define portDECREMENT_CRITICAL_NESTING_COUNT(xCoreID) (uxPortCriticalNesting[(xCoreID)]--)

#if configNUMBER_OF_CORES == 1
void vPortEnterCritical(void);
void vPortExitCritical(void);
#define portENTER_CRITICAL() vPortEnterCritical()
#define portEXIT_CRITICAL() vPortExitCritical()
#else
void vTaskEnterCritical(void);
void vTaskExitCritical(void);
UBaseType_t vTaskEnterCriticalFromISR(void);
void vTaskExitCriticalFromISR(UBaseType_t uxSavedInterruptStatus);
#define portENTER_CRITICAL() vTaskEnterCritical()
#define portEXIT_CRITICAL() vTaskExitCritical()
#define portENTER_CRITICAL_FROM_ISR() vTaskEnterCriticalFromISR()
#define portEXIT_CRITICAL_FROM_ISR(x) vTaskExitCriticalFromISR(x)
#endif

/* ---- the kernel's two locks: fair ticket locks, recursive per core ----
 *
 * A plain test-and-set lock lets whichever core QEMU happens to be running win it again and
 * again, and starves the other core on the task lock; tickets hand the lock over in order. */

typedef struct {
    volatile uint32_t ulNext;    /* next ticket to hand out (LDREX/STREX increment) */
    volatile uint32_t ulServing; /* ticket that owns the lock */
    volatile uint32_t ulOwner;   /* owning core + 1, 0 when free */
    volatile uint32_t ulDepth;   /* recursion depth of the owner */
} PortTicketLock_t;

void vPortTicketLock(PortTicketLock_t *pxLock);
void vPortTicketUnlock(PortTicketLock_t *pxLock);
void vPortRecursiveLock(PortTicketLock_t *pxLock, BaseType_t xCoreID);
void vPortRecursiveUnlock(PortTicketLock_t *pxLock, BaseType_t xCoreID);

extern PortTicketLock_t xPortTaskLock, xPortISRLock;

#if configNUMBER_OF_CORES == 1
#define portGET_ISR_LOCK(xCoreID)
#define portRELEASE_ISR_LOCK(xCoreID)
#define portGET_TASK_LOCK(xCoreID)
#define portRELEASE_TASK_LOCK(xCoreID)
#else
#define portGET_ISR_LOCK(xCoreID) vPortRecursiveLock(&xPortISRLock, (xCoreID))
#define portRELEASE_ISR_LOCK(xCoreID) vPortRecursiveUnlock(&xPortISRLock, (xCoreID))
#define portGET_TASK_LOCK(xCoreID) vPortRecursiveLock(&xPortTaskLock, (xCoreID))
#define portRELEASE_TASK_LOCK(xCoreID) vPortRecursiveUnlock(&xPortTaskLock, (xCoreID))
#endif

/* Cross-core yield cost as the port measures it (run-time counter units), per receiving core. */
typedef struct {
    uint32_t ulCount, ulMin, ulMax, ulSum;
} PortDoorbellLatency_t;
extern PortDoorbellLatency_t xPortDoorbellLatency[portMAX_CORE_COUNT], xPortYieldLatency[portMAX_CORE_COUNT];
extern volatile uint32_t ulPortDoorbellsRung[portMAX_CORE_COUNT], ulPortDoorbellsTaken[portMAX_CORE_COUNT];

/* Exception and interrupt handlers the vector tables point at. */
void vPortSVCHandler(void);
void xPortPendSVHandler(void);
void xPortSysTickHandler(void);
void vPortDoorbellHandler(void);
/* PendSV calls it after vTaskSwitchContext() (the cross-core yield count). */
void vPortSwitched(void);
/* Core 1's reset handler calls this once its C runtime is usable (FPU on, stack set). */
void vPortCore1Main(void) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* PORTMACRO_H */
