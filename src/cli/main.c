/* main.c - placeholder. */
#include "config.h"
#include "cli.h"
int main(void)
{
	return 1;
}
