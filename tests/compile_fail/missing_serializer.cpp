// first-error: ASYNCSTATE_SERIALIZABLE
// A struct stored in state needs a serializer; the error names the macro that makes one.
#include <asyncstate/function.hpp>

#include <string>

struct Profile {
  std::string name;
  int tier = 0;
};

asyncstate::ValueStateDescriptor<Profile> descriptor("profile");
