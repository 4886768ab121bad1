/* SPDX-License-Identifier: MIT */
/* spin: burn CPU forever in user mode (for timeout tests). */
int main(void)
{
	volatile unsigned long counter = 0;

	for (;;)
		counter++;
}
