# r2dn_shim.jl: the Julia side of r2dn's bridge to RobustNeuralNetworks.jl (r2dn.julia.bridge).
#
# Loaded by `include` into Main through juliacall; defines the module `R2DNShim`. Python passes
# numpy arrays (arriving as PythonCall `PyArray`s, same index order) and ASCII keyword names; this
# file copies them into native Julia arrays and calls RobustNeuralNetworks.jl's own constructors,
# so every map from direct to explicit parameters below is RobustNeuralNetworks.jl's.
#
# Signals use Julia's layout: states and inputs are (n, batch) matrices, sequences (n, batch, T).
# R2DNs have no RobustNeuralNetworks.jl type: `R2DN` assembles one from the explicit LTI matrices
# that r2dn computed and an RNN.jl `LBDN` built from the R2DN's network parameters.

module R2DNShim

using LinearAlgebra
using RobustNeuralNetworks
import Flux

const RNN = RobustNeuralNetworks

export ren_params, lbdn_params, r2dn, build, simulate, evaluate, explicit_dict

"""
    eltype_of(name) -> Type

`Float32` for "float32", `Float64` for "float64" (r2dn's dtype names).
"""
function eltype_of(name::AbstractString)
    name == "float32" && return Float32
    name == "float64" && return Float64
    throw(ArgumentError("R2DNShim: dtype must be \"float32\" or \"float64\"; got \"$name\""))
end

"""
    activation(name) -> Function

The activation called `name` in r2dn: relu, tanh, sigmoid (NNlib's σ) or identity.
"""
function activation(name::AbstractString)
    name == "relu" && return Flux.relu
    name == "tanh" && return tanh
    name == "sigmoid" && return Flux.sigmoid
    name == "identity" && return identity
    throw(ArgumentError("R2DNShim: activation must be relu, tanh, sigmoid or identity; got \"$name\""))
end

# Copies into native arrays (index order unchanged: A[i, j] == numpy a[i-1, j-1]).
_mat(::Type{T}, x) where {T} = Matrix{T}(x)
_vec(::Type{T}, x) where {T} = Vector{T}(x)

function _get(kw, name::Symbol, owner::AbstractString)
    haskey(kw, name) || throw(ArgumentError("R2DNShim.$owner: missing keyword argument `$name`"))
    return kw[name]
end

"""
    ren_params(family, dtype, nl, nu, nx, nv, ny; X, Y1, X3, Y3, Z3, B2, C2, D12, D21, D22,
               bx, bv, by, eps, rho, polar_param, D22_free, D22_zero, output_map, abar,
               [gamma, learn_gamma | Q, S, R, LQ, LR | nu_index, rho_index])

The RobustNeuralNetworks.jl parameters of a REN (`ContractingRENParams`, `LipschitzRENParams`,
`GeneralRENParams` or `PassiveRENParams`), built with the structs' default constructors from the
fields of `DirectRENParams` (ASCII names: eps = ϵ, rho = ρ, abar = αbar, gamma = γ, ...).
"""
function ren_params(family::AbstractString, dtype::AbstractString, nl::AbstractString,
                    nu::Integer, nx::Integer, nv::Integer, ny::Integer; kwargs...)
    T = eltype_of(dtype)
    kw = Dict{Symbol, Any}(kwargs)
    g(name) = _get(kw, name, "ren_params")
    direct = RNN.DirectRENParams{T}(
        _mat(T, g(:X)), _mat(T, g(:Y1)), _mat(T, g(:X3)), _mat(T, g(:Y3)), _mat(T, g(:Z3)),
        _mat(T, g(:B2)), _mat(T, g(:C2)), _mat(T, g(:D12)), _mat(T, g(:D21)), _mat(T, g(:D22)),
        _vec(T, g(:bx)), _vec(T, g(:bv)), _vec(T, g(:by)), T(g(:eps)), _vec(T, g(:rho)),
        Bool(g(:polar_param)), Bool(g(:D22_free)), Bool(g(:D22_zero)), Bool(g(:output_map)),
    )
    σ = activation(nl)
    abar = T(g(:abar))
    sizes = (Int(nu), Int(nx), Int(nv), Int(ny))
    if family == "ContractingREN"
        return RNN.ContractingRENParams{T}(σ, sizes..., direct, abar)
    elseif family == "LipschitzREN"
        return RNN.LipschitzRENParams{T}(σ, sizes..., direct, abar, _vec(T, g(:gamma)),
                                         Bool(g(:learn_gamma)))
    elseif family == "GeneralREN"
        return RNN.GeneralRENParams{T}(σ, sizes..., direct, abar, _mat(T, g(:Q)), _mat(T, g(:S)),
                                       _mat(T, g(:R)), _mat(T, g(:LQ)), _mat(T, g(:LR)))
    elseif family == "PassiveREN"
        return RNN.PassiveRENParams{T}(σ, sizes..., direct, abar, T(g(:nu_index)),
                                       T(g(:rho_index)))
    end
    throw(ArgumentError("R2DNShim.ren_params: unknown REN family \"$family\""))
end

"""
    lbdn_params(dtype, nl, nu, nh, ny; XY_1, ..., alpha_1, ..., d_1, ..., b_1, ...,
                log_gamma, learn_gamma)

`DenseLBDNParams{T, L}` from per-layer keyword arguments numbered from 1 as in Julia
(`XY_k`, `alpha_k` = α[k], `b_k` for k = 1..L+1, `d_k` for k = 1..L); `nh` is a vector of the
L hidden widths.
"""
function lbdn_params(dtype::AbstractString, nl::AbstractString, nu::Integer,
                     nh::AbstractVector, ny::Integer; kwargs...)
    T = eltype_of(dtype)
    kw = Dict{Symbol, Any}(kwargs)
    g(name) = _get(kw, name, "lbdn_params")
    L = length(nh)
    XY = ntuple(k -> _mat(T, g(Symbol("XY_", k))), L + 1)
    α = ntuple(k -> _vec(T, g(Symbol("alpha_", k))), L + 1)
    d = ntuple(k -> _vec(T, g(Symbol("d_", k))), L)
    b = ntuple(k -> _vec(T, g(Symbol("b_", k))), L + 1)
    direct = RNN.DirectLBDNParams{T, L + 1, L}(XY, α, d, b, _vec(T, g(:log_gamma)),
                                               Bool(g(:learn_gamma)))
    hidden = ntuple(k -> Int(nh[k]), L)
    return RNN.DenseLBDNParams{T, L}(activation(nl), Int(nu), hidden, Int(ny), direct)
end

"""
    R2DN{T, N}

An R2DN assembled from explicit matrices and an RNN.jl LBDN `network` (nv -> hidden -> nv):
v = C1 x + D12 u + bv, w = network(v), x⁺ = A x + B1 w + B2 u + bx, y = C2 x + D21 w + D22 u + by.
"""
struct R2DN{T, N}
    A::Matrix{T}
    B1::Matrix{T}
    B2::Matrix{T}
    C1::Matrix{T}
    C2::Matrix{T}
    D12::Matrix{T}
    D21::Matrix{T}
    D22::Matrix{T}
    bx::Vector{T}
    bv::Vector{T}
    by::Vector{T}
    network::N
    network_params::RNN.DenseLBDNParams{T}
end

function (m::R2DN)(x::AbstractMatrix, u::AbstractMatrix)
    v = m.C1 * x + m.D12 * u .+ m.bv
    w = m.network(v)
    return m.A * x + m.B1 * w + m.B2 * u .+ m.bx, m.C2 * x + m.D21 * w + m.D22 * u .+ m.by
end

"""
    r2dn(dtype, nl, nv, nh; A, B1, B2, C1, C2, D12, D21, D22, bx, bv, by, network_XY_1, ...)

An `R2DN` from the explicit matrices (keywords named as r2dn's explicit fields) and the network's
`lbdn_params` keywords prefixed with `network_` (its γ is 1: `network_log_gamma = [0]`).
"""
function r2dn(dtype::AbstractString, nl::AbstractString, nv::Integer, nh::AbstractVector;
              kwargs...)
    T = eltype_of(dtype)
    kw = Dict{Symbol, Any}(kwargs)
    g(name) = _get(kw, name, "r2dn")
    prefix = "network_"
    netkw = Dict{Symbol, Any}(Symbol(string(k)[length(prefix) + 1:end]) => v
                              for (k, v) in kw if startswith(string(k), prefix))
    ps = lbdn_params(dtype, nl, nv, nh, nv; netkw...)
    net = RNN.LBDN(ps)
    M(name) = _mat(T, g(name))
    V(name) = _vec(T, g(name))
    return R2DN{T, typeof(net)}(M(:A), M(:B1), M(:B2), M(:C1), M(:C2), M(:D12), M(:D21), M(:D22),
                                V(:bx), V(:bv), V(:by), net, ps)
end

"""
    build(params) -> callable model

`REN(ps)` for REN parameters, `LBDN(ps)` for LBDN parameters (explicit parameters built once,
by RobustNeuralNetworks.jl), the model itself for an `R2DN`.
"""
build(ps::RNN.AbstractRENParams) = RNN.REN(ps)
build(ps::RNN.AbstractLBDNParams) = RNN.LBDN(ps)
build(m::R2DN) = m

"""
    simulate(model, dtype, x0, us) -> (xT, ys)

Run a recurrent model from `x0` (nx, batch) over `us` (nu, batch, T); returns the final state
(nx, batch) and the outputs `ys` (ny, batch, T).
"""
function simulate(model, dtype::AbstractString, x0::AbstractMatrix, us::AbstractArray)
    T = eltype_of(dtype)
    ndims(us) == 3 || throw(ArgumentError("R2DNShim.simulate: us must be (nu, batch, T)"))
    m = build(model)
    u = Array{T, 3}(us)
    x = Matrix{T}(x0)
    ys = nothing
    for t in axes(u, 3)
        x, y = m(x, u[:, :, t])
        if ys === nothing
            ys = Array{T, 3}(undef, size(y, 1), size(y, 2), size(u, 3))
        end
        ys[:, :, t] .= y
    end
    return x, ys
end

"""
    evaluate(model, dtype, u) -> y

An LBDN on inputs `u` (n_in, batch); returns (n_out, batch).
"""
evaluate(model, dtype::AbstractString, u::AbstractMatrix) =
    Matrix{eltype_of(dtype)}(build(model)(Matrix{eltype_of(dtype)}(u)))

"""
    explicit_dict(params) -> Dict{String, Any}

RobustNeuralNetworks.jl's explicit parameters under r2dn's names: A B1 B2 C1 C2 D11 D12 D21 D22
bx bv by for a REN; `layers.<k>.{A,B,psi,b}` (A = transpose(A_T), psi = Ψd), `output.{B,b}` and
`sqrt_gamma` for an LBDN; the network's, prefixed `network.`, for an `R2DN`.
"""
function explicit_dict(ps::RNN.AbstractRENParams)
    e = RNN.direct_to_explicit(ps)
    return Dict{String, Any}(string(f) => copy(getfield(e, f)) for f in fieldnames(typeof(e)))
end

function explicit_dict(ps::RNN.AbstractLBDNParams)
    e = RNN.direct_to_explicit(ps)
    out = Dict{String, Any}()
    N = length(e.B)
    for k in 1:(N - 1)
        out["layers.$(k - 1).A"] = Matrix(transpose(e.A_T[k]))
        out["layers.$(k - 1).B"] = Matrix(e.B[k])
        out["layers.$(k - 1).psi"] = Vector(e.Ψd[k])
        out["layers.$(k - 1).b"] = Vector(e.b[k])
    end
    out["output.B"] = Matrix(e.B[N])
    out["output.b"] = Vector(e.b[N])
    out["sqrt_gamma"] = Vector(e.sqrtγ)
    return out
end

explicit_dict(m::R2DN) =
    Dict{String, Any}("network." * k => v for (k, v) in explicit_dict(m.network_params))

end # module R2DNShim
