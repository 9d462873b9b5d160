// compiles
// The near-misses of enum_without_fixed_type.cpp: enums whose every underlying value is
// a value of theirs are stored as they are, alone and inside containers.
#include <asyncstate/function.hpp>

#include <cstdint>
#include <vector>

enum class Tier { Bronze, Silver, Gold };
enum Region : std::uint8_t { North, South };

asyncstate::ValueStateDescriptor<Tier> tier("tier");
asyncstate::ValueStateDescriptor<std::vector<Region>> regions("regions");
asyncstate::MapStateDescriptor<Region, Tier> tiers("tiers");

int main() {
  const std::string bytes = asyncstate::encode(std::vector<Region>{North, South});
  return asyncstate::decode<std::vector<Region>>(bytes).size() == 2 ? 0 : 1;
}
