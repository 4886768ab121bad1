/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "devices/serial.h"

/* register offsets */
#define UART_RX  0 /* in: receive buffer; out: THR (DLAB=0) / DLL (DLAB=1) */
#define UART_IER 1 /* DLM when DLAB=1 */
#define UART_IIR 2 /* in: IIR; out: FCR */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define UART_LCR_DLAB   0x80
#define UART_LSR_THRE   0x20
#define UART_LSR_TEMT   0x40
#define UART_IIR_NO_INT 0x01

void serial__init(struct serial *s, uint16_t base, int out_fd)
{
	memset(s, 0, sizeof(*s));
	s->base = base;
	s->out_fd = out_fd;
}

bool serial__owns(const struct serial *s, uint16_t port)
{
	return port >= s->base && port < s->base + SERIAL_NR_PORTS;
}

static void serial__tx(struct serial *s, uint8_t c)
{
	ssize_t n;

	s->tx_bytes++;
	if (s->out_fd < 0)
		return;
	do
		n = write(s->out_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	/* console output is best effort: a closed stderr must not stop the guest */
}

static void serial__out(struct serial *s, unsigned reg, uint8_t v)
{
	bool dlab = s->st.lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_RX:
		if (dlab)
			s->st.dll = v;
		else
			serial__tx(s, v);
		break;
	case UART_IER:
		if (dlab)
			s->st.dlm = v;
		else
			s->st.ier = v & 0x0f;
		break;
	case UART_IIR: s->st.fcr = v; break;
	case UART_LCR: s->st.lcr = v; break;
	case UART_MCR: s->st.mcr = v & 0x1f; break;
	case UART_SCR: s->st.scr = v; break;
	default: break; /* LSR, MSR: read-only */
	}
}

static uint8_t serial__in(struct serial *s, unsigned reg)
{
	bool dlab = s->st.lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_RX: return dlab ? s->st.dll : 0;
	case UART_IER: return dlab ? s->st.dlm : s->st.ier;
	case UART_IIR: return UART_IIR_NO_INT; /* 0 would mean "interrupt pending" */
	case UART_LCR: return s->st.lcr;
	case UART_MCR: return s->st.mcr;
	case UART_LSR: return UART_LSR_THRE | UART_LSR_TEMT;
	case UART_SCR: return s->st.scr;
	default: return 0;
	}
}

void serial__io(struct serial *s, uint16_t port, bool is_write, uint8_t *data)
{
	unsigned reg = port - s->base;

	if (is_write)
		serial__out(s, reg, *data);
	else
		*data = serial__in(s, reg);
}
