//! Procedural macros of [evloop](https://docs.rs/evloop), re-exported by it:
//! `#[evloop::run_on_executor]`, `#[evloop::main]` and `#[evloop::test]`.
//!
//! Owns: code generation only. Must not touch: runtime behaviour — the generated code
//! calls evloop's public API (`Executor::submit`, `Runtime::builder`).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, ExprLit, FnArg, ImplItemFn, ItemFn, Lit, LitStr, Meta, MetaNameValue, Pat, ReturnType,
    Token, parse_macro_input,
};

/// Runs a `&self` method on a blocking [`Executor`] held in a field of `self`
/// (Tornado's `@run_on_executor`). Put it on a method of an `impl`:
///
/// * `#[run_on_executor]` or `#[run_on_executor()]` uses the field `executor`;
/// * `#[run_on_executor(executor = "pool")]` uses the field `pool`.
///
/// `fn m(&self, args…) -> R` becomes `fn m(&self, args…) -> evloop::Future<R>`: it
/// clones `self` (so `Self: Clone + Send + 'static`) and submits the body to the
/// executor, where `self` is that clone; the future is bound to the calling loop. It
/// works in inherent and trait impls. The method must be a plain (not `async`),
/// non-generic `&self` method; anything else is a compile error.
///
/// A body returning a `Result` — a return type spelled `Result<T, E>`, `io::Result<T>`
/// or any path ending in `Result` with type arguments, with `E: Into<evloop::Error>` —
/// gives `evloop::Future<T>`, its `Err` stored as the future's exception, as Tornado
/// does: so `chain_future` into a `Future<T>` type-checks and `gather` fails fast on
/// the first error. Any other return type `R` gives `Future<R>` as it is.
///
/// # Panics
///
/// The generated method panics when called off a loop thread (its future is bound to
/// the calling loop); the message names the method and says to call it from a task or
/// callback running on an evloop loop.
///
/// [`Executor`]: https://docs.rs/evloop/latest/evloop/struct.Executor.html
#[proc_macro_attribute]
pub fn run_on_executor(args: TokenStream, item: TokenStream) -> TokenStream {
    let field = match parse_executor_field(args.into()) {
        Ok(field) => field,
        Err(e) => return e.to_compile_error().into(),
    };
    let method = parse_macro_input!(item as ImplItemFn);
    match expand_run_on_executor(field, method) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The executor field named by the attribute (`executor` by default), with the span to
/// report a missing field at.
fn parse_executor_field(args: TokenStream2) -> syn::Result<syn::Ident> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut field = None;
    for meta in metas {
        match meta {
            Meta::NameValue(MetaNameValue {
                path,
                value:
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(name),
                        ..
                    }),
                ..
            }) if path.is_ident("executor") => {
                if field.is_some() {
                    return Err(syn::Error::new(name.span(), "`executor` is given twice"));
                }
                field = Some(field_ident(&name)?);
            }
            Meta::NameValue(MetaNameValue { path, value, .. }) if path.is_ident("executor") => {
                return Err(syn::Error::new(
                    value.span(),
                    "expected a string: #[run_on_executor(executor = \"field_name\")]",
                ));
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "unknown argument: the only argument is `executor = \"field_name\"`",
                ));
            }
        }
    }
    Ok(field.unwrap_or_else(|| syn::Ident::new("executor", Span::call_site())))
}

fn field_ident(name: &LitStr) -> syn::Result<syn::Ident> {
    syn::parse_str::<syn::Ident>(&name.value())
        .map(|mut ident| {
            ident.set_span(name.span());
            ident
        })
        .map_err(|_| syn::Error::new(name.span(), "`executor` must name a field of `self`"))
}

fn expand_run_on_executor(field: syn::Ident, method: ImplItemFn) -> syn::Result<TokenStream2> {
    let sig = &method.sig;
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "#[run_on_executor] cannot be used on an `async fn`: the body runs on a blocking \
             pool thread; make it a plain `fn` (it will return an `evloop::Future`)",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "#[run_on_executor] does not support generic methods: the body is moved to a \
             pool thread as a closure of concrete types",
        ));
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) => {
            return Err(syn::Error::new(
                r.span(),
                "#[run_on_executor] needs `&self`: the body runs on a pool thread with a \
                 clone of `self` (`self` by value or `&mut self` cannot be shared with it)",
            ));
        }
        _ => {
            return Err(syn::Error::new(
                sig.ident.span(),
                "#[run_on_executor] needs a method taking `&self` (the executor is a field \
                 of `self`)",
            ));
        }
    }

    let attrs = &method.attrs;
    let vis = &method.vis;
    let name = &sig.ident;
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    // `Result<T, E>` bodies give `Future<T>` (see the docs above).
    let ok_type = match &sig.output {
        ReturnType::Type(_, ty) => result_ok_type(ty),
        ReturnType::Default => None,
    };
    let (future_type, submit) = match ok_type {
        Some(ok) => (quote!(#ok), quote!(submit_result)),
        None => (output.clone(), quote!(submit)),
    };
    let method_name = sig.ident.to_string();
    // The body moves into the job's closure, where `self` is a clone of the receiver
    // (bound under a hygienic name, so user code cannot collide with it). Working
    // inside the method keeps it valid in trait impls too.
    let this = syn::Ident::new("__evloop_self", Span::mixed_site());
    let mut outer_args = Vec::new();
    let mut bindings = Vec::new();
    for (i, arg) in sig.inputs.iter().skip(1).enumerate() {
        let FnArg::Typed(typed) = arg else {
            unreachable!("only the first argument is a receiver")
        };
        let ty = &typed.ty;
        let pat = &typed.pat;
        match &**pat {
            Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => {
                let ident = &p.ident;
                outer_args.push(quote!(#ident: #ty));
                if p.mutability.is_some() {
                    bindings.push(quote!(let mut #ident = #ident;));
                }
            }
            _ => {
                let ident = format_ident!("__evloop_arg{}", i, span = Span::mixed_site());
                outer_args.push(quote!(#ident: #ty));
                bindings.push(quote!(let #pat: #ty = #ident;));
            }
        }
    }
    let body = rename_self(method.block.to_token_stream(), &this);
    let field_access = quote_spanned!(field.span()=> &self.#field);
    Ok(quote! {
        #(#attrs)*
        #vis fn #name(&self, #(#outer_args),*) -> ::evloop::Future<#future_type> {
            let #this = ::core::clone::Clone::clone(self);
            let __evloop_executor: &::evloop::Executor = #field_access;
            ::evloop::__executor_private::#submit(__evloop_executor, #method_name, move || -> #output {
                let #this = &#this;
                #(#bindings)*
                #body
            })
        }
    })
}

/// `T` of a return type spelled `Result<T, …>` (the last path segment is `Result` with
/// type arguments: `Result<T, E>`, `io::Result<T>`, `std::result::Result<T, E>`).
fn result_ok_type(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

/// Replaces the receiver `self` in `tokens` with `this` (a `&Self` binding). `self::`
/// paths are module paths, not the receiver, and are left alone.
fn rename_self(tokens: TokenStream2, this: &syn::Ident) -> TokenStream2 {
    use proc_macro2::{Group, TokenTree};
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tree) = iter.next() {
        match tree {
            TokenTree::Ident(ident) if ident == "self" => {
                let is_path =
                    matches!(iter.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                if is_path {
                    out.push(TokenTree::Ident(ident));
                } else {
                    // Resolves like `this` (hygienic), points at the original `self`.
                    let mut renamed = this.clone();
                    renamed.set_span(this.span().located_at(ident.span()));
                    out.push(TokenTree::Ident(renamed));
                }
            }
            TokenTree::Group(group) => {
                let mut renamed = Group::new(group.delimiter(), rename_self(group.stream(), this));
                renamed.set_span(group.span());
                out.push(TokenTree::Group(renamed));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

/// Runs `async fn main` on a fresh evloop [`Runtime`] (the convention tokio users
/// expect). Builder options are attribute arguments: `blocking_threads = 4`,
/// `event_capacity = 256`, `debug = true`, `thread_keep_alive_ms = 500`,
/// `slow_callback_duration_ms = 50`, `shutdown_timeout_ms = 200`.
///
/// ```ignore
/// #[evloop::main(blocking_threads = 4)]
/// async fn main() -> Result<(), evloop::Error> {
///     evloop::time::sleep(std::time::Duration::from_millis(1)).await?;
///     Ok(())
/// }
/// ```
///
/// [`Runtime`]: https://docs.rs/evloop/latest/evloop/struct.Runtime.html
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(args.into(), item, false)
}

/// Runs an `async fn` test on a fresh evloop [`Runtime`]; takes the same arguments as
/// [`macro@main`].
///
/// [`Runtime`]: https://docs.rs/evloop/latest/evloop/struct.Runtime.html
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(args.into(), item, true)
}

fn entry(args: TokenStream2, item: TokenStream, is_test: bool) -> TokenStream {
    let func = parse_macro_input!(item as ItemFn);
    match expand_entry(args, func.clone(), is_test) {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            // Keep an empty function of that name so the error above is the only one
            // (no "`main` function not found" on top of it); it never compiles into a
            // program, since the error stops the build.
            let error = e.to_compile_error();
            let name = &func.sig.ident;
            let vis = &func.vis;
            quote!(#error #vis fn #name() {}).into()
        }
    }
}

fn expand_entry(args: TokenStream2, func: ItemFn, is_test: bool) -> syn::Result<TokenStream2> {
    let what = if is_test {
        "#[evloop::test]"
    } else {
        "#[evloop::main]"
    };
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            func.sig.fn_token.span(),
            format!("{what} goes on an `async fn`"),
        ));
    }
    if !func.sig.inputs.is_empty() {
        return Err(syn::Error::new(
            func.sig.inputs.span(),
            format!("{what}: the function cannot take arguments"),
        ));
    }
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            func.sig.generics.span(),
            format!("{what}: the function cannot be generic"),
        ));
    }
    let mut options = Vec::new();
    for meta in Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(args)? {
        let Some(name) = meta.path.get_ident().map(ToString::to_string) else {
            return Err(syn::Error::new(meta.path.span(), "expected an option name"));
        };
        let value = &meta.value;
        let option = match name.as_str() {
            "blocking_threads" => quote!(.blocking_threads(#value)),
            "event_capacity" => quote!(.event_capacity(#value)),
            "debug" => quote!(.debug(#value)),
            "thread_keep_alive_ms" => {
                quote!(.thread_keep_alive(::core::time::Duration::from_millis(#value)))
            }
            "slow_callback_duration_ms" => {
                quote!(.slow_callback_duration(::core::time::Duration::from_millis(#value)))
            }
            "shutdown_timeout_ms" => {
                quote!(.shutdown_timeout(::core::time::Duration::from_millis(#value)))
            }
            _ => {
                return Err(syn::Error::new(
                    meta.path.span(),
                    format!(
                        "unknown option `{name}`; expected one of: blocking_threads, \
                         event_capacity, debug, thread_keep_alive_ms, \
                         slow_callback_duration_ms, shutdown_timeout_ms"
                    ),
                ));
            }
        };
        options.push(option);
    }
    let attrs = &func.attrs;
    let vis = &func.vis;
    let mut sig = func.sig.clone();
    sig.asyncness = None;
    let body = &func.block;
    let test_attr = if is_test {
        quote!(#[::core::prelude::v1::test])
    } else {
        quote!()
    };
    let message = format!("{what}: cannot create the evloop runtime");
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            let __evloop_runtime = ::evloop::Runtime::builder()
                #(#options)*
                .build()
                .expect(#message);
            __evloop_runtime.block_on(async move #body)
        }
    })
}
