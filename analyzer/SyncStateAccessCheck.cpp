#include "SyncStateAccessCheck.h"

#include "utils/Defaults.h"
#include "utils/Matching.h"
#include "utils/UdfInventory.h"

#include "clang/AST/ASTContext.h"
#include "clang/AST/ASTLambda.h"
#include "clang/AST/RecursiveASTVisitor.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"
#include "clang/Lex/Lexer.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Regex.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

enum class Blocking { None, StateMethod, Annotated, Listed, FutureWait };

// Kinds for ReportedOnce: a call is reported once whichever way it matched.
constexpr unsigned CallKind = 0;

bool returnsNodiscard(const FunctionDecl* Function) {
  if (Function->hasAttr<WarnUnusedResultAttr>()) return true;
  const auto* Record = Function->getReturnType()->getAsCXXRecordDecl();
  if (!Record) return false;
  if (Record->hasAttr<WarnUnusedResultAttr>()) return true;
  // An explicit specialization (StateFuture<void>, droppable) has its own attributes;
  // an instantiation has its template's.
  if (const auto* Spec = dyn_cast<ClassTemplateSpecializationDecl>(Record);
      Spec && Spec->getSpecializationKind() != TSK_ExplicitSpecialization)
    return Spec->getSpecializedTemplate()->getTemplatedDecl()->hasAttr<WarnUnusedResultAttr>();
  return false;
}

// `s.update(v);` used as a statement: nothing reads the result.
bool isDiscardedStatement(const CallExpr* Call, ASTContext& Ctx, const AsyncScopeResolver& Resolver) {
  DynTypedNode Current = DynTypedNode::create(*Call);
  for (unsigned Depth = 0; Depth < 4; ++Depth) {
    auto Parent = Resolver.parentOf(Current, Ctx);
    if (!Parent) return false;
    if (Parent->get<CompoundStmt>()) return true;
    if (!Parent->get<ExprWithCleanups>()) return false;
    Current = *Parent;
  }
  return false;
}

// T of a StateFuture<T> (or any class template instance with one type argument).
QualType futureValueType(QualType Future) {
  const auto* Spec = dyn_cast_or_null<ClassTemplateSpecializationDecl>(Future->getAsCXXRecordDecl());
  if (!Spec || Spec->getTemplateArgs().size() != 1 || Spec->getTemplateArgs()[0].getKind() != TemplateArgument::Type)
    return {};
  return Spec->getTemplateArgs()[0].getAsType();
}

// Every `return` of Function's own body (not of lambdas or local classes in it).
class OwnReturns : public RecursiveASTVisitor<OwnReturns> {
 public:
  bool VisitReturnStmt(ReturnStmt* Return) {
    Returns.push_back(Return);
    return true;
  }
  bool TraverseLambdaExpr(LambdaExpr*) { return true; }
  bool TraverseCXXRecordDecl(CXXRecordDecl*) { return true; }
  std::vector<const ReturnStmt*> Returns;
};

std::string absolutePath(const SourceManager& SM, SourceLocation Loc) {
  OptionalFileEntryRef File = SM.getFileEntryRefForID(SM.getFileID(Loc));
  if (!File) return {};
  StringRef Real = File->getFileEntry().tryGetRealPathName();
  SmallString<256> Path(Real.empty() ? File->getName() : Real);
  llvm::sys::fs::make_absolute(Path);
  llvm::sys::path::remove_dots(Path, true);
  return std::string(Path);
}

}  // namespace

// A project's own base template between KeyedProcessFunction and the UDFs
// (adding counters, say) processes nothing itself: it is not a UDF to migrate.
// Class-template UDFs declare processElement (or inherit it from such a base).
bool SyncStateAccessCheck::processesRecords(const CXXRecordDecl* Record) const {
  Record = Record ? Record->getDefinition() : nullptr;
  if (!Record || Resolver.isInLibrary(Record)) return false;
  for (const CXXMethodDecl* Method : Record->methods())
    if (Method->getDeclName().isIdentifier() && Method->getName() == "processElement") return true;
  for (const CXXBaseSpecifier& Base : Record->bases())
    if (processesRecords(Base.getType()->getAsCXXRecordDecl())) return true;
  return false;
}

SyncStateAccessCheck::SyncStateAccessCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context),
      StateTypes(parseQualifiedNames(Options.getLocalOrGlobal("StateTypes", defaults::StateTypes))),
      SyncMethods(parseList(Options.get("SyncMethods", defaults::SyncMethods))),
      BlockingFunctions(parseQualifiedNames(Options.get("BlockingFunctions", defaults::SyncBlockingFunctions))),
      FutureWaitMethods(parseList(Options.getLocalOrGlobal("FutureWaitMethods", defaults::FutureWaitMethods))),
      StdFutureTypes(parseQualifiedNames(Options.getLocalOrGlobal("StdFutureTypes", defaults::StdFutureTypes))),
      BlockingAnnotation(Options.getLocalOrGlobal("BlockingAnnotation", defaults::BlockingAnnotation).str()),
      RecordCoroutineMethods(parseList(Options.get("RecordCoroutineMethods", defaults::RecordCoroutineMethods))),
      CollectorTypes(parseQualifiedNames(Options.getLocalOrGlobal("CollectorTypes", defaults::CollectorTypes))) {}

void SyncStateAccessCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "StateTypes", serializeQualifiedNames(StateTypes));
  Options.store(Opts, "SyncMethods", serializeList(SyncMethods));
  Options.store(Opts, "BlockingFunctions", serializeQualifiedNames(BlockingFunctions));
  Options.store(Opts, "FutureWaitMethods", serializeList(FutureWaitMethods));
  Options.store(Opts, "StdFutureTypes", serializeQualifiedNames(StdFutureTypes));
  Options.store(Opts, "BlockingAnnotation", BlockingAnnotation);
  Options.store(Opts, "RecordCoroutineMethods", serializeList(RecordCoroutineMethods));
  Options.store(Opts, "CollectorTypes", serializeQualifiedNames(CollectorTypes));
}

void SyncStateAccessCheck::registerMatchers(MatchFinder* Finder) {
  traverseUserCodeOnly(Finder);
  std::vector<std::string> Candidates = SyncMethods;
  Candidates.insert(Candidates.end(), FutureWaitMethods.begin(), FutureWaitMethods.end());
  for (const std::string& Name : BlockingFunctions) Candidates.push_back(lastComponent(Name).str());
  Finder->addMatcher(
      callExpr(unless(isExpansionInSystemHeader()),
               callee(functionDecl(anyOf(hasAnyName(refs(Candidates)), hasAttr(attr::Annotate))).bind("callee")))
          .bind("call"),
      this);
  if (udfInventory())
    Finder->addMatcher(cxxRecordDecl(isDefinition(), unless(isExpansionInSystemHeader())).bind("record"), this);
}

void SyncStateAccessCheck::check(const MatchFinder::MatchResult& Result) {
  if (const auto* Record = Result.Nodes.getNodeAs<CXXRecordDecl>("record")) {
    recordUdfClass(Record, *Result.SourceManager);
    return;
  }
  checkCall(Result.Nodes.getNodeAs<CallExpr>("call"), *Result.Context);
}

void SyncStateAccessCheck::checkCall(const CallExpr* Call, ASTContext& Ctx) {
  const auto* Callee = dyn_cast_or_null<FunctionDecl>(Call->getCalleeDecl());
  if (!Callee || !Callee->getDeclName().isIdentifier()) return;
  const auto* Member = dyn_cast<CXXMemberCallExpr>(Call);
  const CXXRecordDecl* Object = Member ? objectRecord(Member) : nullptr;
  const StringRef Name = Callee->getName();

  Blocking Kind = Blocking::None;
  if (Member && contains(SyncMethods, Name) &&
      (isSameOrDerivedFrom(Object, StateTypes) ||
       isSameOrDerivedFrom(Member->getMethodDecl()->getParent(), StateTypes)))
    Kind = Blocking::StateMethod;
  else if (hasAnnotation(Callee, BlockingAnnotation))
    Kind = Blocking::Annotated;
  else if (matchesQualifiedName(Callee, BlockingFunctions))
    Kind = Blocking::Listed;
  else if (Member && contains(FutureWaitMethods, Name) &&
           (isSameOrDerivedFrom(Object, StdFutureTypes) || Resolver.isFutureClass(Object)))
    Kind = Blocking::FutureWait;
  if (Kind == Blocking::None || Resolver.isUnevaluated(*Call, Ctx)) return;

  const Scope Where = Resolver.classify(*Call, Ctx);
  if (!Where.isAsync()) return;
  // Inside continuations a future wait is asyncstate-blocking-callback's finding.
  if (Kind == Blocking::FutureWait && Where.runsAsContinuation()) return;
  const SourceLocation Loc = Call->getExprLoc();
  if (!Reported.firstTime(Loc, CallKind)) return;

  if (Kind == Blocking::FutureWait) {
    diag(Loc,
         "waiting on a future with '%0' blocks the task thread in async UDF code; chain a continuation "
         "or co_await it instead")
        << Name;
    return;
  }

  const CXXRecordDecl* Owner = Object ? Object : (Member ? Member->getMethodDecl()->getParent() : nullptr);
  const std::string AsyncName = asyncCounterpartName(Name);
  const CXXMethodDecl* Counterpart = Owner ? findMethod(Owner, AsyncName) : nullptr;
  const std::string What = Kind == Blocking::StateMethod ? "synchronous state access" : "call to blocking function";
  std::string NotMigrated;
  {
    auto Diag = Counterpart ? diag(Loc, "%0 '%1' blocks the task thread in async UDF code; use '%2' instead")
                            : diag(Loc, "%0 '%1' blocks the task thread in async UDF code");
    Diag << What << (Kind == Blocking::StateMethod ? Name.str() : Callee->getQualifiedNameAsString());
    if (Counterpart) {
      Diag << AsyncName;
      NotMigrated = migrate(Diag, Call, Callee, Counterpart, Ctx);
    } else {
      NotMigrated = "there is no async counterpart '" + AsyncName + "'";
    }
  }
  if (!NotMigrated.empty()) diag(Loc, "not migrated automatically: %0", DiagnosticIDs::Note) << NotMigrated;
}

// Adds the fix-its that migrate Call to its async Counterpart; returns why it cannot
// be migrated, or "" once it is.
std::string SyncStateAccessCheck::migrate(DiagnosticBuilder& Diag, const CallExpr* Call, const FunctionDecl* Callee,
                                          const CXXMethodDecl* Counterpart, ASTContext& Ctx) {
  const SourceLocation Loc = Call->getExprLoc();
  const StringRef Name = Callee->getName();
  const std::string AsyncName = Counterpart->getNameAsString();
  if (!Loc.isFileID() || !Call->getBeginLoc().isFileID() || !Call->getEndLoc().isFileID())
    return "the call is written by a macro";
  const unsigned Args = Call->getNumArgs();
  if (Counterpart->getMinRequiredArguments() > Args || Counterpart->getNumParams() < Args)
    return "'" + AsyncName + "' takes other arguments";
  const QualType Awaited = futureValueType(Counterpart->getReturnType());
  const AwaitSite Site = awaitSite(Call, Ctx);
  std::string Obstacle = Site.Obstacle;
  if (Obstacle.empty() && (Awaited.isNull() || !Ctx.hasSameUnqualifiedType(Awaited, Callee->getReturnType())))
    Obstacle = "'" + AsyncName + "' yields another type than '" + Name.str() + "' (" +
               (Awaited.isNull() ? Counterpart->getReturnType() : Awaited).getAsString(Ctx.getPrintingPolicy()) + ")";
  if (Obstacle.empty()) {
    // The migration proper: co_await the async twin in place; the function becomes a
    // coroutine, so its `return;` statements become `co_return;` (once per function).
    const bool Parenthesize = needsParentheses(Call, Ctx);
    Diag << FixItHint::CreateInsertion(Call->getBeginLoc(), Parenthesize ? "(co_await " : "co_await ")
         << FixItHint::CreateReplacement(CharSourceRange::getTokenRange(Loc, Loc), AsyncName);
    if (Parenthesize)
      Diag << FixItHint::CreateInsertion(
          Lexer::getLocForEndOfToken(Call->getEndLoc(), 0, Ctx.getSourceManager(), Ctx.getLangOpts()), ")");
    if (!isa_and_nonnull<CoroutineBodyStmt>(Site.Coroutine->getBody()) && Migrated.insert(Site.Coroutine).second) {
      OwnReturns Visitor;
      Visitor.TraverseStmt(Site.Coroutine->getBody());
      for (const ReturnStmt* Return : Visitor.Returns)
        Diag << FixItHint::CreateReplacement(CharSourceRange::getTokenRange(Return->getReturnLoc()), "co_return");
    }
    return "";
  }
  // Outside a coroutine the one mechanical rewrite left is a void mutation used as a
  // statement: it becomes a request whose StateFuture<void> may be dropped (per-key
  // order keeps later requests of the record behind it; a failure still reaches the
  // error handler).
  if (Callee->getReturnType()->isVoidType() && isDiscardedStatement(Call, Ctx, Resolver)) {
    Diag << FixItHint::CreateReplacement(CharSourceRange::getTokenRange(Loc, Loc), AsyncName);
    if (returnsNodiscard(Counterpart)) Diag << FixItHint::CreateInsertion(Call->getBeginLoc(), "(void)");
    return "";
  }
  return Obstacle;
}

SyncStateAccessCheck::AwaitSite SyncStateAccessCheck::awaitSite(const CallExpr* Call, ASTContext& Ctx) {
  DynTypedNode Current = DynTypedNode::create(*Call);
  for (unsigned Depth = 0; Depth < 1024; ++Depth) {
    auto Parent = Resolver.parentOf(Current, Ctx);
    if (!Parent) break;
    Current = *Parent;
    if (Current.get<LambdaExpr>())
      return {nullptr,
              "inside a lambda, where co_await would suspend the lambda and not the record's coroutine; chain a "
              "continuation on the async call instead"};
    if (Current.get<CXXCatchStmt>()) return {nullptr, "inside a catch handler, where co_await is not allowed"};
    if (const auto* Function = Current.get<FunctionDecl>()) {
      if (isLambdaCallOperator(Function))
        return {nullptr, "inside a lambda, where co_await would suspend the lambda and not the record's coroutine"};
      if (Resolver.isTaskCoroutine(Function) || becomesRecordCoroutine(Function)) {
        if (!returnsCanBecomeCoReturn(Function))
          return {nullptr, "'" + Function->getNameAsString() + "' has a return statement that cannot become co_return"};
        return {Function, ""};
      }
      std::string Names;
      for (const std::string& Method : RecordCoroutineMethods) Names += (Names.empty() ? "" : " or ") + Method;
      return {nullptr, "in '" + Function->getNameAsString() + "', which cannot become a coroutine in place (only " +
                           Names + ", or a function returning Task<>, can); make it return Task<> and co_await it"};
    }
    if (Current.get<CXXRecordDecl>() || Current.get<TranslationUnitDecl>()) break;
  }
  return {nullptr, "not inside a function body"};
}

// Computed once per function: a body with many sync calls is not walked once per call.
bool SyncStateAccessCheck::returnsCanBecomeCoReturn(const FunctionDecl* Function) {
  const auto [Known, Inserted] = ReturnsConvertible.try_emplace(Function, true);
  if (Inserted) {
    OwnReturns Visitor;
    Visitor.TraverseStmt(Function->getBody());
    Known->second = llvm::none_of(Visitor.Returns, [](const ReturnStmt* Return) {
      return Return->getRetValue() || !Return->getReturnLoc().isFileID();
    });
  }
  return Known->second;
}

// A void UDF member named in RecordCoroutineMethods with a Collector& parameter: the
// library's std::coroutine_traits specialization makes it a record coroutine. In a class
// template the parameter is often the dependent `Collector<Out>&`, which names the
// Collector template but no record yet; it becomes a coroutine all the same.
bool SyncStateAccessCheck::becomesRecordCoroutine(const FunctionDecl* Function) const {
  const auto* Method = dyn_cast<CXXMethodDecl>(Function);
  if (!Method || !Method->getReturnType()->isVoidType() || !Method->getDeclName().isIdentifier() ||
      !contains(RecordCoroutineMethods, Method->getName()) || isa<CXXConstructorDecl, CXXDestructorDecl>(Method))
    return false;
  for (const ParmVarDecl* Parameter : Method->parameters())
    if (Parameter->getType()->isLValueReferenceType() &&
        matchesQualifiedName(namedClassOf(Parameter->getType()->getPointeeType()), CollectorTypes))
      return true;
  return false;
}

// `co_await` binds looser than member access, subscripts and calls: `s.get(k).value_or(0)`
// becomes `(co_await s.asyncGet(k)).value_or(0)`.
bool SyncStateAccessCheck::needsParentheses(const CallExpr* Call, ASTContext& Ctx) const {
  DynTypedNode Current = DynTypedNode::create(*Call);
  for (unsigned Depth = 0; Depth < 8; ++Depth) {
    auto Parent = Resolver.parentOf(Current, Ctx);
    if (!Parent) return false;
    if (Parent->get<ImplicitCastExpr>() || Parent->get<MaterializeTemporaryExpr>() ||
        Parent->get<CXXBindTemporaryExpr>() || Parent->get<ExprWithCleanups>()) {
      Current = *Parent;
      continue;
    }
    // An implicit conversion (`if (s.value())` calls optional's operator bool) is not
    // written: ImplicitCastExpr(UserDefinedConversion) <- call <- MemberExpr(operator bool).
    if (const auto* Member = Parent->get<MemberExpr>(); Member && isa<CXXConversionDecl>(Member->getMemberDecl())) {
      auto ConversionCall = Resolver.parentOf(*Parent, Ctx);
      auto Cast = ConversionCall ? Resolver.parentOf(*ConversionCall, Ctx) : std::nullopt;
      if (Cast && Cast->get<ImplicitCastExpr>() &&
          Cast->get<ImplicitCastExpr>()->getCastKind() == CK_UserDefinedConversion) {
        Current = *Cast;
        continue;
      }
    }
    return Parent->get<MemberExpr>() || Parent->get<ArraySubscriptExpr>() || Parent->get<CXXOperatorCallExpr>() ||
           Parent->get<CXXMemberCallExpr>();
  }
  return true;
}

void SyncStateAccessCheck::recordUdfClass(const CXXRecordDecl* Record, const SourceManager& SM) {
  // A class template is reported once, as written: its instantiations (explicit
  // `template class X<T>;` lines included) share its source and its findings.
  if (Record->isLambda() || isTemplateInstantiation(Record->getTemplateSpecializationKind()) ||
      !Resolver.isUdfClass(Record) || Resolver.isInLibrary(Record) ||
      (Record->getDescribedClassTemplate() && !processesRecords(Record)))
    return;
  UdfClassRecord Entry;
  Entry.Name = Record->getQualifiedNameAsString();
  const SourceLocation Begin = SM.getExpansionLoc(Record->getBeginLoc());
  Entry.File = absolutePath(SM, Begin);
  Entry.Line = SM.getExpansionLineNumber(Begin);
  Entry.Reported = SM.isInMainFile(Begin);
  if (!Entry.Reported) {
    const std::optional<std::string>& HeaderFilter = TidyContext->getOptions().HeaderFilterRegex;
    Entry.Reported = HeaderFilter && !HeaderFilter->empty() && llvm::Regex(*HeaderFilter).match(Entry.File);
  }
  auto addRange = [&](SourceRange Range) {
    const SourceLocation B = SM.getExpansionLoc(Range.getBegin());
    const SourceLocation E = SM.getExpansionLoc(Range.getEnd());
    if (SM.getFileID(B) != SM.getFileID(E)) return;
    Entry.Ranges.push_back({absolutePath(SM, B), {SM.getFileOffset(B), SM.getFileOffset(E)}});
  };
  addRange(Record->getSourceRange());
  for (const CXXMethodDecl* Method : Record->methods())
    if (const FunctionDecl* Definition = Method->getDefinition(); Definition && Definition->isOutOfLine())
      addRange(Definition->getSourceRange());
  udfInventory()->record(std::move(Entry));
}

}  // namespace clang::tidy::asyncstate
