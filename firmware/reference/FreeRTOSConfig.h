/* FreeRTOS configuration of the mpfr reference firmware: QEMU mps2-an385 (Cortex-M3, port
 * GCC/ARM_CM3) or mps2-an521 (2x Cortex-M33, mpfr's own SMP port in firmware/smp/cm33_mps2).
 * Config contract: mpfr_config.h comes first and wins; every tunable below is only a default. */
#ifndef FREERTOS_CONFIG_H
#define FREERTOS_CONFIG_H

#include "mpfr_config.h"

/* The CPU the firmware is built for tells the two machines apart: mps2-an385 runs at 25 MHz,
 * mps2-an521 (SSE-200) at 20 MHz; the peripheral timers run at the same clock. */
#if defined(__ARM_ARCH_8M_MAIN__)
#define REF_CLOCK_HZ 20000000UL
#else
#define REF_CLOCK_HZ 25000000UL
#endif
#ifndef configCPU_CLOCK_HZ
#define configCPU_CLOCK_HZ REF_CLOCK_HZ
#endif
#ifndef configNUMBER_OF_CORES
#define configNUMBER_OF_CORES 1
#endif
#ifndef configTICK_RATE_HZ
#define configTICK_RATE_HZ 1000
#endif
#ifndef configTOTAL_HEAP_SIZE
#define configTOTAL_HEAP_SIZE 65536
#endif
#ifndef configMAX_PRIORITIES
#define configMAX_PRIORITIES 8
#endif
#ifndef configMINIMAL_STACK_SIZE
#define configMINIMAL_STACK_SIZE 128
#endif
#ifndef configMAX_TASK_NAME_LEN
#define configMAX_TASK_NAME_LEN 16
#endif
#ifndef configUSE_PREEMPTION
#define configUSE_PREEMPTION 1
#endif
#ifndef configUSE_TIME_SLICING
#define configUSE_TIME_SLICING 1
#endif
#ifndef configUSE_16_BIT_TICKS
#define configUSE_16_BIT_TICKS 0
#endif
/* SMP switches (mpfr_config.h sets them for 2-core boards; these are the defaults). */
#if configNUMBER_OF_CORES > 1
#ifndef configUSE_CORE_AFFINITY
#define configUSE_CORE_AFFINITY 1
#endif
#ifndef configRUN_MULTIPLE_PRIORITIES
#define configRUN_MULTIPLE_PRIORITIES 1
#endif
#ifndef configUSE_PASSIVE_IDLE_HOOK
#define configUSE_PASSIVE_IDLE_HOOK 1
#endif
#ifndef configUSE_TASK_PREEMPTION_DISABLE
#define configUSE_TASK_PREEMPTION_DISABLE 1
#endif
#endif
/* The idle tasks sleep in WFI until the next interrupt (the tick on core 0, a doorbell on core 1)
 * instead of spinning: a busy idle loop takes a whole host core under QEMU, per core, for as long
 * as the board runs (main.c; mpfr_config.h turns on the other cores' idle hook). On two cores
 * that wants QEMU's default mode, a host thread per core: under its round-robin modes (-icount,
 * -accel tcg,thread=single) a core sleeping in WFI was once seen not to run again while the other
 * core stayed busy, even with its doorbell raised, so a build for those says -DMPFR_IDLE_SPIN=1
 * (docs/firmware.md, "Idle in WFI"). */
#ifndef configUSE_IDLE_HOOK
#define configUSE_IDLE_HOOK 1
#endif
#ifndef MPFR_IDLE_SPIN
#define MPFR_IDLE_SPIN 0
#endif
#ifndef configUSE_TICK_HOOK
#define configUSE_TICK_HOOK 0
#endif
#ifndef configUSE_MUTEXES
#define configUSE_MUTEXES 1
#endif
#ifndef configUSE_TASK_NOTIFICATIONS
#define configUSE_TASK_NOTIFICATIONS 1
#endif
#ifndef configUSE_TIMERS
#define configUSE_TIMERS 0
#endif
#ifndef configSUPPORT_STATIC_ALLOCATION
#define configSUPPORT_STATIC_ALLOCATION 1
#endif
#ifndef configSUPPORT_DYNAMIC_ALLOCATION
#define configSUPPORT_DYNAMIC_ALLOCATION 1
#endif
#ifndef configKERNEL_PROVIDED_STATIC_MEMORY
#define configKERNEL_PROVIDED_STATIC_MEMORY 1
#endif
#ifndef configUSE_TRACE_FACILITY
#define configUSE_TRACE_FACILITY 1
#endif
#ifndef configGENERATE_RUN_TIME_STATS
#define configGENERATE_RUN_TIME_STATS 1
#endif
#ifndef configUSE_STATS_FORMATTING_FUNCTIONS
#define configUSE_STATS_FORMATTING_FUNCTIONS 0
#endif
/* The mpfr agent runs without a task of its own here: the service task polls it from a slot that
 * the 100 Hz timer interrupt schedules (main.c). 1 gives it its own task `mpfr` instead. */
#ifndef MPFR_AGENT_OWN_TASK
#define MPFR_AGENT_OWN_TASK 0
#endif
/* The agent walks the kernel's task lists itself (freertos_tasks_c_additions.h, in the agent
 * folder) instead of copying them with uxTaskGetSystemState(): no snapshot array, and one stack
 * scan per sample instead of one per task. */
#ifndef MPFR_AGENT_TASK_WALK
#define MPFR_AGENT_TASK_WALK 1
#endif
#if MPFR_AGENT_TASK_WALK && !defined(configINCLUDE_FREERTOS_TASK_C_ADDITIONS_H)
#define configINCLUDE_FREERTOS_TASK_C_ADDITIONS_H 1
#endif
#ifndef configRECORD_STACK_HIGH_ADDRESS
#define configRECORD_STACK_HIGH_ADDRESS 1
#endif
#ifndef configCHECK_FOR_STACK_OVERFLOW
#define configCHECK_FOR_STACK_OVERFLOW 2
#endif
#ifndef configUSE_MALLOC_FAILED_HOOK
#define configUSE_MALLOC_FAILED_HOOK 1
#endif
#ifndef INCLUDE_uxTaskGetStackHighWaterMark
#define INCLUDE_uxTaskGetStackHighWaterMark 1
#endif
#ifndef INCLUDE_xTaskGetIdleTaskHandle
#define INCLUDE_xTaskGetIdleTaskHandle 1
#endif
#ifndef INCLUDE_xTaskGetCurrentTaskHandle
#define INCLUDE_xTaskGetCurrentTaskHandle 1
#endif
#ifndef INCLUDE_vTaskDelete
#define INCLUDE_vTaskDelete 1
#endif
#ifndef INCLUDE_vTaskSuspend
#define INCLUDE_vTaskSuspend 1
#endif
#ifndef INCLUDE_vTaskDelay
#define INCLUDE_vTaskDelay 1
#endif
#ifndef INCLUDE_eTaskGetState
#define INCLUDE_eTaskGetState 1
#endif
#ifndef INCLUDE_xTaskGetSchedulerState
#define INCLUDE_xTaskGetSchedulerState 1
#endif

/* Interrupt priorities (upper bits of an 8-bit field; 3 bits on the M3, 8 on QEMU's M33). Interrupts that call FreeRTOS
 * must be numerically at or above configMAX_SYSCALL_INTERRUPT_PRIORITY. */
#ifndef configKERNEL_INTERRUPT_PRIORITY
#define configKERNEL_INTERRUPT_PRIORITY 0xE0
#endif
#ifndef configMAX_SYSCALL_INTERRUPT_PRIORITY
#define configMAX_SYSCALL_INTERRUPT_PRIORITY 0xA0
#endif

/* Run-time stats: TIMER1 free-running at the peripheral clock. */
#define MPFR_RUNTIME_HZ REF_CLOCK_HZ
void ref_runtime_init(void);
unsigned long ref_runtime_now(void);
#define portCONFIGURE_TIMER_FOR_RUN_TIME_STATS() ref_runtime_init()
#define portGET_RUN_TIME_COUNTER_VALUE() ref_runtime_now()

void ref_assert_failed(const char *file, int line);
#define configASSERT(x) do { if (!(x)) { ref_assert_failed(__FILE__, __LINE__); } } while (0)

/* Service task of the threading backend (mpfr_config.h usually defines these). */
#ifndef MICROPY_FREERTOS_SERVICE_PRIORITY
#define MICROPY_FREERTOS_SERVICE_PRIORITY 3
#endif
#ifndef MICROPY_FREERTOS_SERVICE_STACK_SIZE
#define MICROPY_FREERTOS_SERVICE_STACK_SIZE 2048
#endif
#ifndef MP_THREAD_DEFAULT_STACK_SIZE
#define MP_THREAD_DEFAULT_STACK_SIZE 4096
#endif

#define vPortSVCHandler SVC_Handler
#define xPortPendSVHandler PendSV_Handler
#define xPortSysTickHandler SysTick_Handler

#endif /* FREERTOS_CONFIG_H */
