/* backend/backend.c - what every backend shares: which weight types can be multiplied. */
#include "backend/backend.h"

#include "kernels/ref/dequant.h" /* defines: dequant_supported */

int backend_matrix_type_supported(uint32_t type) { return dequant_supported(type); }
