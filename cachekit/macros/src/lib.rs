//! `#[cachekit::cache]`: use it through the `cachekit` crate, whose docs describe it.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    parse_macro_input, Error, Expr, FnArg, GenericArgument, GenericParam, Ident, ItemFn, LitInt,
    LitStr, Pat, PathArguments, ReturnType, Token, Type, TypeImplTrait,
};

/// Caches an async function's results in a cachekit backend; see the `cachekit` crate.
#[proc_macro_attribute]
pub fn cache(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = parse_macro_input!(attr as Options);
    let function = parse_macro_input!(item as ItemFn);
    expand(options, function)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

#[derive(Default)]
struct Options {
    backend: Option<Expr>,
    ttl: Option<LitInt>,
    namespace: Option<LitStr>,
    version: Option<LitInt>,
    timeout_ms: Option<LitInt>,
    max_value_bytes: Option<LitInt>,
    skip: Vec<Ident>,
    strict: bool,
}

impl Parse for Options {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut options = Options::default();
        while !input.is_empty() {
            let name: Ident = input.parse()?;
            match name.to_string().as_str() {
                "backend" => {
                    input.parse::<Token![=]>()?;
                    options.backend = Some(input.parse()?);
                }
                "ttl" => {
                    input.parse::<Token![=]>()?;
                    options.ttl = Some(input.parse()?);
                }
                "namespace" => {
                    input.parse::<Token![=]>()?;
                    options.namespace = Some(input.parse()?);
                }
                "version" => {
                    input.parse::<Token![=]>()?;
                    options.version = Some(input.parse()?);
                }
                "timeout_ms" => {
                    input.parse::<Token![=]>()?;
                    options.timeout_ms = Some(input.parse()?);
                }
                "max_value_bytes" => {
                    input.parse::<Token![=]>()?;
                    options.max_value_bytes = Some(input.parse()?);
                }
                "skip" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                    options.skip.extend(names);
                }
                "strict" => options.strict = true,
                other => {
                    return Err(Error::new(
                        name.span(),
                        format!(
                            "unknown cachekit::cache option `{other}`; expected backend, ttl, \
                             namespace, version, timeout_ms, max_value_bytes, skip(..) or strict"
                        ),
                    ))
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(options)
    }
}

/// Whether the return type is spelled `Result<T, E>` (the fallible form).
fn is_result(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Type::Path(path) = &**ty else {
        return false;
    };
    path.path.segments.last().is_some_and(|segment| {
        segment.ident == "Result"
            && matches!(&segment.arguments, PathArguments::AngleBracketed(args)
                if args.args.iter().filter(|a| matches!(a, GenericArgument::Type(_))).count() == 2)
    })
}

/// Whether `ty` mentions `impl Trait` anywhere: an anonymous type parameter.
fn has_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_type_impl_trait(&mut self, _: &TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

fn expand(options: Options, function: ItemFn) -> syn::Result<TokenStream2> {
    let signature = &function.sig;
    if signature.asyncness.is_none() {
        return Err(Error::new(
            signature.fn_token.span(),
            "cachekit::cache caches async functions; make this an `async fn`",
        ));
    }
    let Some(backend) = &options.backend else {
        return Err(Error::new(
            Span::call_site(),
            "cachekit::cache needs a backend: #[cachekit::cache(backend = MyBackend::new())]",
        ));
    };
    let name = &signature.ident;
    let mut key_args = Vec::new();
    let mut params = Vec::new();
    for input in &signature.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                return Err(Error::new(
                    receiver.span(),
                    "cachekit::cache cannot key on `self`: cache a free function that takes \
                     the fields the result depends on (or move them into arguments)",
                ))
            }
            FnArg::Typed(typed) => {
                let Pat::Ident(ident) = &*typed.pat else {
                    return Err(Error::new(
                        typed.pat.span(),
                        "cachekit::cache needs plain argument names (no patterns) to key on",
                    ));
                };
                params.push(typed.clone());
                if !options.skip.contains(&ident.ident) {
                    key_args.push((
                        ident.ident.clone(),
                        typed.ty.span(),
                        has_impl_trait(&typed.ty),
                    ));
                }
            }
        }
    }
    for skipped in &options.skip {
        if !params
            .iter()
            .any(|p| matches!(&*p.pat, Pat::Ident(i) if i.ident == *skipped))
        {
            return Err(Error::new(
                skipped.span(),
                format!("skip({skipped}): `{name}` has no argument `{skipped}`"),
            ));
        }
    }

    let static_name = format_ident!("__CACHEKIT_{}", name.to_string().to_uppercase());
    let scope_static = format_ident!("__CACHEKIT_{}_SCOPE", name.to_string().to_uppercase());
    let cache_fn = format_ident!("{}_cache", name);
    let invalidate_fn = format_ident!("{}_invalidate", name);
    // An explicit namespace is the user's choice of identity, shared or not; the default
    // one, the module path, needs a scope to tell apart functions nested in blocks.
    let (namespace, scope, scope_item) = match &options.namespace {
        Some(namespace) => (quote!(#namespace), quote!(""), quote!()),
        None => {
            // Where the function is: its line and column, as the compiler reports them
            // for its name (or for the outermost macro call that produced it).
            let line = quote_spanned!(name.span()=> ::core::line!());
            let column = quote_spanned!(name.span()=> ::core::column!());
            (
                quote!(::core::concat!(
                    ::core::module_path!(),
                    "::",
                    ::core::stringify!(#name)
                )),
                quote! {
                    #scope_static
                        .get_or_init(|| ::cachekit::__private::scope(
                            ::core::module_path!(),
                            ::core::any::type_name_of_val(&#cache_fn),
                            ::core::stringify!(#cache_fn),
                            #line,
                            #column,
                        ))
                        .as_str()
                },
                quote! {
                    #[allow(non_upper_case_globals)]
                    static #scope_static: ::std::sync::OnceLock<::std::string::String> =
                        ::std::sync::OnceLock::new();
                },
            )
        }
    };
    let version = match &options.version {
        Some(version) => quote!(#version),
        None => quote!(1u32),
    };
    let ttl = match &options.ttl {
        Some(ttl) => quote!(::core::option::Option::Some(::std::time::Duration::from_secs(#ttl))),
        None => quote!(::core::option::Option::None),
    };
    let mut make_cache = quote!(::cachekit::Cache::new(#backend));
    if let Some(ms) = &options.timeout_ms {
        make_cache =
            quote!(#make_cache.with_backend_timeout(::std::time::Duration::from_millis(#ms)));
    }
    if let Some(bytes) = &options.max_value_bytes {
        make_cache = quote!(#make_cache.with_max_value_bytes(#bytes));
    }
    let checks = key_args.iter().map(
        |(arg, span, _)| quote_spanned!(*span=> ::cachekit::__private::assert_key_argument(&#arg);),
    );
    let key_names: Vec<&Ident> = key_args.iter().map(|(arg, _, _)| arg).collect();
    // What the call instantiates: each type parameter's concrete type, each const
    // parameter's value, then each keyed `impl Trait` argument's concrete type.
    let mut instantiation = Vec::new();
    for param in &signature.generics.params {
        match param {
            GenericParam::Type(param) => {
                let ident = &param.ident;
                instantiation.push(quote!(::core::any::type_name::<#ident>()));
            }
            GenericParam::Const(param) => {
                let ident = &param.ident;
                instantiation.push(quote!(#ident));
            }
            // Lifetimes are erased: they cannot change a value.
            GenericParam::Lifetime(_) => {}
        }
    }
    for (arg, _, is_impl_trait) in &key_args {
        if *is_impl_trait {
            instantiation.push(quote!(::core::any::type_name_of_val(&#arg)));
        }
    }
    let array = |items: &[TokenStream2]| {
        if items.is_empty() {
            quote!(&::cachekit::__private::EMPTY)
        } else {
            quote!(&(#(#items,)*))
        }
    };
    let generics_array = array(&instantiation);
    let borrowed_args: Vec<TokenStream2> = key_names.iter().map(|arg| quote!(&#arg)).collect();
    let args_array = array(&borrowed_args);
    let make_key = quote! {
        ::cachekit::CacheKey::for_generic_call(
            #namespace,
            #version,
            #scope,
            #generics_array,
            #args_array,
        )
    };
    let vis = &function.vis;
    let attrs = &function.attrs;
    let body = &function.block;
    let output = &signature.output;
    let generics = &signature.generics;
    let where_clause = &signature.generics.where_clause;
    let invalidate_params = params
        .iter()
        .filter(|p| matches!(&*p.pat, Pat::Ident(i) if key_names.iter().any(|k| **k == i.ident)));

    let cached_call = match (is_result(output), options.strict) {
        (true, false) => quote! {
            __cache.memoize(__key, #ttl, __compute).await
        },
        (true, true) => quote! {
            __cache.strict().memoize(__key, #ttl, __compute).await
        },
        (false, false) => quote! {
            match __cache
                .memoize(__key, #ttl, move || async move {
                    ::core::result::Result::<_, ::core::convert::Infallible>::Ok(__compute().await)
                })
                .await
            {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(never) => match never {},
            }
        },
        (false, true) => {
            return Err(Error::new(
                output.span(),
                "cachekit::cache(strict) returns backend errors through the function's \
                 error type: the function must return `Result<T, E>` with \
                 `E: From<cachekit::BackendError>`",
            ))
        }
    };

    Ok(quote! {
        #[allow(non_upper_case_globals)]
        static #static_name: ::std::sync::OnceLock<::cachekit::Cache> = ::std::sync::OnceLock::new();
        #scope_item

        /// The cache behind this function: its backend and its hit/miss/error counters.
        #vis fn #cache_fn() -> &'static ::cachekit::Cache {
            #static_name.get_or_init(|| #make_cache)
        }

        /// Removes the cached result of one call; `true` if there was one. Once it returns,
        /// no call is answered by a computation of that call that began before it.
        #vis async fn #invalidate_fn #generics(#(#invalidate_params),*)
            -> ::core::result::Result<bool, ::cachekit::BackendError>
            #where_clause
        {
            let __key = #make_key?;
            #cache_fn().invalidate(&__key).await
        }

        #(#attrs)*
        #vis async fn #name #generics(#(#params),*) #output #where_clause {
            #(#checks)*
            let __cache = #cache_fn();
            // The key borrows the arguments; the body then takes them.
            let __key = #make_key;
            // An inner async block, so that `return` in the body returns its value.
            let __compute = move || async move #body;
            #cached_call
        }
    })
}
