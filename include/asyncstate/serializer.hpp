#pragma once
// Byte encodings for keys and values. Every backend stores these bytes, which is what
// makes a savepoint written by one backend readable by any other.
// Users make their own types storable by specialising Serializer<T> or, for plain
// aggregates, with ASYNCSTATE_SERIALIZABLE(Type, field1, field2, ...). A specialisation
// may declare `static constexpr std::size_t kMinEncodedSize`, the fewest bytes one value
// takes (1 when it does not), which bounds how many of them a length prefix can claim;
// one whose values can take no bytes at all declares 0, or containers of them cannot decode.

#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace asyncstate {

class SerializationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class T, class Enable = void>
struct Serializer;

template <class K>
std::string keyToText(const K& key);

namespace detail {
inline void requireBytes(std::string_view in, std::size_t n, const char* what) {
  if (in.size() < n) {
    throw SerializationError(std::string("truncated data while decoding ") + what + ": need " + std::to_string(n) +
                             " bytes, have " + std::to_string(in.size()));
  }
}

template <class T>
constexpr std::size_t minEncodedSize() {
  if constexpr (requires { Serializer<T>::kMinEncodedSize; }) {
    return Serializer<T>::kMinEncodedSize;
  } else {
    return 1;
  }
}
}  // namespace detail

namespace detail {
// Every value of the underlying type is a value of such an enum (enum class E, enum E :
// int). One without a fixed type holds only its enumerators' range: copying a corrupt
// value into it would be undefined behaviour, as with bool.
template <class E>
concept FixedUnderlyingEnum = std::is_enum_v<E> && requires { E{std::underlying_type_t<E>{}}; };
}  // namespace detail

// Fixed-width little-endian integers, IEEE floats and enums with a fixed underlying type
// (this library targets little-endian hosts).
template <class T>
struct Serializer<T, std::enable_if_t<std::is_arithmetic_v<T> || std::is_enum_v<T>>> {
  static_assert(!std::is_enum_v<T> || detail::FixedUnderlyingEnum<T>,
                "an enum stored in state needs a fixed underlying type: declare it 'enum class E' or 'enum E : int' "
                "(without one, a corrupt stored value could decode as a value the enum cannot hold), or specialize "
                "asyncstate::Serializer<E> to check its values");
  static constexpr std::size_t kMinEncodedSize = sizeof(T);
  static void write(std::string& out, const T& value) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    out.append(bytes, sizeof(T));
  }
  static T read(std::string_view& in) {
    detail::requireBytes(in, sizeof(T), "a number");
    T value;
    std::memcpy(&value, in.data(), sizeof(T));
    in.remove_prefix(sizeof(T));
    return value;
  }
};

// One byte, 0 or 1. Copying any other byte into a bool would be undefined behaviour, and
// a corrupt value taken for true.
template <>
struct Serializer<bool> {
  static constexpr std::size_t kMinEncodedSize = 1;
  static void write(std::string& out, bool value) { out.push_back(value ? '\1' : '\0'); }
  static bool read(std::string_view& in) {
    detail::requireBytes(in, 1, "a bool");
    const auto byte = static_cast<unsigned char>(in.front());
    if (byte > 1) throw SerializationError("corrupt bool: byte " + std::to_string(byte) + " is neither 0 nor 1");
    in.remove_prefix(1);
    return byte == 1;
  }
};

namespace detail {
// Elements that take no bytes are not bounded by the input's size: a corrupt length
// prefix could claim four billion of them. This many cost a few MiB at most.
inline constexpr std::size_t kMaxBytelessElements = std::size_t{1} << 20;

inline void writeLength(std::string& out, std::size_t n, std::size_t minElementBytes) {
  if (minElementBytes == 0 && n > kMaxBytelessElements) {
    throw SerializationError("cannot encode " + std::to_string(n) + " elements that take no bytes: at most " +
                             std::to_string(kMaxBytelessElements) + " can be decoded");
  }
  // Cut to 32 bits, a longer length would decode as a shorter value: data lost silently.
  if (n > std::numeric_limits<std::uint32_t>::max()) {
    throw SerializationError("cannot encode " + std::to_string(n) +
                             " elements or bytes: a length prefix holds at most " +
                             std::to_string(std::numeric_limits<std::uint32_t>::max()));
  }
  Serializer<std::uint32_t>::write(out, static_cast<std::uint32_t>(n));
}
inline std::size_t readLength(std::string_view& in, std::size_t minElementBytes) {
  const std::uint32_t n = Serializer<std::uint32_t>::read(in);
  if (minElementBytes == 0 && n > kMaxBytelessElements) {
    throw SerializationError("corrupt length prefix: " + std::to_string(n) + " elements that take no bytes (at most " +
                             std::to_string(kMaxBytelessElements) + " are encoded)");
  }
  if (minElementBytes > 0 && n > in.size() / minElementBytes) {
    throw SerializationError("corrupt length prefix: " + std::to_string(n) + " elements cannot fit in " +
                             std::to_string(in.size()) + " remaining bytes");
  }
  return n;
}
}  // namespace detail

template <>
struct Serializer<std::string> {
  static constexpr std::size_t kMinEncodedSize = 4;
  static void write(std::string& out, const std::string& value) {
    detail::writeLength(out, value.size(), 1);
    out.append(value);
  }
  static std::string read(std::string_view& in) {
    const std::size_t n = detail::readLength(in, 1);
    std::string value(in.substr(0, n));
    in.remove_prefix(n);
    return value;
  }
};

template <class T>
struct Serializer<std::vector<T>> {
  static constexpr std::size_t kMinEncodedSize = 4;
  static void write(std::string& out, const std::vector<T>& value) {
    detail::writeLength(out, value.size(), detail::minEncodedSize<T>());
    for (const T& element : value) Serializer<T>::write(out, element);
  }
  static std::vector<T> read(std::string_view& in) {
    const std::size_t n = detail::readLength(in, detail::minEncodedSize<T>());
    std::vector<T> value;
    value.reserve(n);
    for (std::size_t i = 0; i < n; ++i) value.push_back(Serializer<T>::read(in));
    return value;
  }
};

template <class K, class V>
struct Serializer<std::map<K, V>> {
  static constexpr std::size_t kMinEncodedSize = 4;
  static void write(std::string& out, const std::map<K, V>& value) {
    detail::writeLength(out, value.size(), kMinEntrySize);
    for (const auto& [k, v] : value) {
      Serializer<K>::write(out, k);
      Serializer<V>::write(out, v);
    }
  }
  static std::map<K, V> read(std::string_view& in) {
    const std::size_t n = detail::readLength(in, kMinEntrySize);
    std::map<K, V> value;
    for (std::size_t i = 0; i < n; ++i) {
      K k = Serializer<K>::read(in);
      V v = Serializer<V>::read(in);
      auto [it, inserted] = value.try_emplace(std::move(k), std::move(v));
      if (!inserted) throw SerializationError("corrupt map: key " + keyToText(it->first) + " appears twice");
    }
    return value;
  }

 private:
  static constexpr std::size_t kMinEntrySize = detail::minEncodedSize<K>() + detail::minEncodedSize<V>();
};

template <class T>
struct Serializer<std::optional<T>> {
  static constexpr std::size_t kMinEncodedSize = 1;
  static void write(std::string& out, const std::optional<T>& value) {
    Serializer<bool>::write(out, value.has_value());
    if (value) Serializer<T>::write(out, *value);
  }
  static std::optional<T> read(std::string_view& in) {
    if (!Serializer<bool>::read(in)) return std::nullopt;
    return Serializer<T>::read(in);
  }
};

template <class A, class B>
struct Serializer<std::pair<A, B>> {
  static constexpr std::size_t kMinEncodedSize = detail::minEncodedSize<A>() + detail::minEncodedSize<B>();
  static void write(std::string& out, const std::pair<A, B>& value) {
    Serializer<A>::write(out, value.first);
    Serializer<B>::write(out, value.second);
  }
  static std::pair<A, B> read(std::string_view& in) {
    A a = Serializer<A>::read(in);
    return {std::move(a), Serializer<B>::read(in)};
  }
};

template <class... Ts>
struct Serializer<std::tuple<Ts...>> {
  static constexpr std::size_t kMinEncodedSize = (std::size_t{0} + ... + detail::minEncodedSize<Ts>());
  static void write(std::string& out, const std::tuple<Ts...>& value) {
    std::apply([&](const Ts&... parts) { (Serializer<Ts>::write(out, parts), ...); }, value);
  }
  static std::tuple<Ts...> read(std::string_view& in) { return std::tuple<Ts...>{Serializer<Ts>::read(in)...}; }
};

// Whole-buffer helpers: trailing bytes are corruption, not something to ignore.
template <class T>
std::string encode(const T& value) {
  std::string out;
  Serializer<T>::write(out, value);
  return out;
}

template <class T>
T decode(std::string_view bytes) {
  T value = Serializer<T>::read(bytes);
  if (!bytes.empty()) {
    throw SerializationError("corrupt value: " + std::to_string(bytes.size()) + " unexpected trailing bytes");
  }
  return value;
}

// Human-readable text for a key, used in error messages.
template <class K>
std::string keyToText(const K& key) {
  if constexpr (std::is_same_v<K, std::string>) {
    return key;
  } else if constexpr (std::is_arithmetic_v<K>) {
    return std::to_string(key);
  } else if constexpr (requires(std::string s) { s = to_string(key); }) {
    return to_string(key);
  } else {
    return "<" + std::to_string(encode(key).size()) + "-byte key>";
  }
}

}  // namespace asyncstate

#define ASYNCSTATE_DETAIL_WRITE_FIELD(field) ::asyncstate::Serializer<decltype(value.field)>::write(out, value.field);
#define ASYNCSTATE_DETAIL_READ_FIELD(field) value.field = ::asyncstate::Serializer<decltype(value.field)>::read(in);

// Makes an aggregate storable field by field, e.g.
//   struct Profile { std::string name; int tier; };
//   ASYNCSTATE_SERIALIZABLE(Profile, name, tier)
// Must be used at global namespace scope.
#define ASYNCSTATE_SERIALIZABLE(Type, ...)                                   \
  template <>                                                                \
  struct asyncstate::Serializer<Type> {                                      \
    static void write(std::string& out, const Type& value) {                 \
      ASYNCSTATE_DETAIL_FOR_EACH(ASYNCSTATE_DETAIL_WRITE_FIELD, __VA_ARGS__) \
    }                                                                        \
    static Type read(std::string_view& in) {                                 \
      Type value{};                                                          \
      ASYNCSTATE_DETAIL_FOR_EACH(ASYNCSTATE_DETAIL_READ_FIELD, __VA_ARGS__)  \
      return value;                                                          \
    }                                                                        \
  }

// Applies macro m to up to 12 arguments.
#define ASYNCSTATE_DETAIL_FE_1(m, a) m(a)
#define ASYNCSTATE_DETAIL_FE_2(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_1(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_3(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_2(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_4(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_3(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_5(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_4(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_6(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_5(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_7(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_6(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_8(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_7(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_9(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_8(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_10(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_9(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_11(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_10(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_12(m, a, ...) m(a) ASYNCSTATE_DETAIL_FE_11(m, __VA_ARGS__)
#define ASYNCSTATE_DETAIL_FE_PICK(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, name, ...) name
#define ASYNCSTATE_DETAIL_FOR_EACH(m, ...)                                                                          \
  ASYNCSTATE_DETAIL_FE_PICK(__VA_ARGS__, ASYNCSTATE_DETAIL_FE_12, ASYNCSTATE_DETAIL_FE_11, ASYNCSTATE_DETAIL_FE_10, \
                            ASYNCSTATE_DETAIL_FE_9, ASYNCSTATE_DETAIL_FE_8, ASYNCSTATE_DETAIL_FE_7,                 \
                            ASYNCSTATE_DETAIL_FE_6, ASYNCSTATE_DETAIL_FE_5, ASYNCSTATE_DETAIL_FE_4,                 \
                            ASYNCSTATE_DETAIL_FE_3, ASYNCSTATE_DETAIL_FE_2, ASYNCSTATE_DETAIL_FE_1)                 \
  (m, __VA_ARGS__)
