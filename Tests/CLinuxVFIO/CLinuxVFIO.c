#include "CLinuxVFIO.h"
