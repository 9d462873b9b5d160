#include "utils/UdfInventory.h"

namespace clang::tidy::asyncstate {

namespace {
UdfInventory* CurrentInventory = nullptr;
}

void setUdfInventory(UdfInventory* Inventory) { CurrentInventory = Inventory; }
UdfInventory* udfInventory() { return CurrentInventory; }

}  // namespace clang::tidy::asyncstate
