# MicroPython user C module: the mpfr telemetry agent and `import mpfr` (make-based ports).
#   make BOARD=... USER_C_MODULES=/path/to/firmware (the folder holding usermod/ and agent/)
MPFR_MOD_DIR := $(USERMOD_DIR)
MPFR_AGENT_DIR := $(MPFR_MOD_DIR)/../agent

SRC_USERMOD_C += $(MPFR_MOD_DIR)/modmpfr.c
SRC_USERMOD_C += $(MPFR_AGENT_DIR)/mpfr_agent.c
SRC_USERMOD_C += $(MPFR_AGENT_DIR)/mpfr_proto.c
SRC_USERMOD_C += $(MPFR_AGENT_DIR)/mpfr_rtt.c

CFLAGS_USERMOD += -I$(MPFR_AGENT_DIR)
