/* SPDX-License-Identifier: MIT */
/*
 * Minimal 8250 UART at COM1 (0x3f8-0x3ff): transmit only, no interrupts.
 * The guest kernel uses it for early messages; bytes go to an output fd.
 */
#ifndef SB_SERIAL_H
#define SB_SERIAL_H
#include <stdbool.h>
#include <stdint.h>

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_NR_PORTS  8

/* Guest-visible register state: plain data, saved as-is in snapshots. */
#define SERIAL_STATE_VERSION 1
struct serial_state {
	uint8_t ier;
	uint8_t lcr;
	uint8_t mcr;
	uint8_t scr;
	uint8_t dll;
	uint8_t dlm;
	uint8_t fcr;
	uint8_t reserved;
};
_Static_assert(sizeof(struct serial_state) == 8, "serial_state size");

struct serial {
	struct serial_state st;
	uint16_t base;    /* first port */
	int out_fd;       /* where THR bytes go; runtime only */
	uint64_t tx_bytes;
};

void serial__init(struct serial *s, uint16_t base, int out_fd);

/* True if port belongs to this UART. */
bool serial__owns(const struct serial *s, uint16_t port);

/* One port access of 1 byte: out stores *data, in fills *data. */
void serial__io(struct serial *s, uint16_t port, bool is_write, uint8_t *data);
#endif
