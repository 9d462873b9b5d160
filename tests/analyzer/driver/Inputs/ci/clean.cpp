// Nothing to report.
#include <asyncstate/future.hpp>

int main() { return 0; }
