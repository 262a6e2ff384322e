#include "shield_nitro/core/version.h"

namespace shield_nitro {

const char* version() { return SN_VERSION; }

}  // namespace shield_nitro
