/* sim.h - placeholder */
